//! [`Checked`]: a workflow input as it arrived, decoded or not.
//!
//! The SDK decodes a workflow's input before the workflow runs; when that fails (another
//! Temporal client sent a string where a struct belongs, or a payload that is not JSON), it
//! fails the *workflow task*, which the server retries forever, and the caller waits for
//! nothing. Every workflow here takes `Checked<T>` instead: decoding never fails, the
//! workflow looks at the result first and fails itself, non-retryable, with the decoding
//! error and the shape it expected.
//!
//! On the wire `Checked<T>` is exactly `T` as JSON, so clients send the plain input
//! (`input.into()`), and `temporal workflow start --input '{…}'` works as before.

use serde::Serialize;
use serde::de::DeserializeOwned;
use temporalio_common::data_converters::{
    PayloadConversionError, SerializationContext, TemporalDeserializable, TemporalSerializable,
};
use temporalio_common::protos::temporal::api::common::v1::Payload;

const ENCODING: &str = "encoding";
const JSON: &str = "json/plain";

/// The decoded input, or why it could not be decoded (with the expected shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked<T>(Result<T, String>);

impl<T> From<T> for Checked<T> {
    fn from(value: T) -> Self {
        Checked(Ok(value))
    }
}

impl<T> Checked<T> {
    /// The input, or the reason it could not be decoded.
    pub fn into_result(self) -> Result<T, String> {
        self.0
    }
}

impl<T: DeserializeOwned + Serialize + Default> Checked<T> {
    fn decode(payloads: Vec<Payload>) -> Self {
        let expected =
            || serde_json::to_string(&T::default()).unwrap_or_else(|_| "a JSON object".to_owned());
        let type_name = std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("input");
        let reason = match payloads.as_slice() {
            [] => "no input was given".to_owned(),
            [one] => {
                let encoding = one
                    .metadata
                    .get(ENCODING)
                    .map(|e| String::from_utf8_lossy(e).into_owned())
                    .unwrap_or_default();
                if encoding != JSON {
                    format!("the input is encoded as `{encoding}`, not `{JSON}`")
                } else {
                    match serde_json::from_slice::<T>(&one.data) {
                        Ok(value) => return Checked(Ok(value)),
                        Err(e) => format!("the input does not decode as {type_name}: {e}"),
                    }
                }
            }
            many => format!("{} inputs were given; the workflow takes one", many.len()),
        };
        Checked(Err(format!(
            "{reason}; expected one JSON object like {}",
            expected()
        )))
    }
}

impl<T: Serialize> TemporalSerializable for Checked<T> {
    fn to_payload(&self, _: &SerializationContext<'_>) -> Result<Payload, PayloadConversionError> {
        let value = self
            .0
            .as_ref()
            .map_err(|reason| PayloadConversionError::EncodingError(reason.clone().into()))?;
        let data = serde_json::to_vec(value)
            .map_err(|e| PayloadConversionError::EncodingError(Box::new(e)))?;
        Ok(Payload {
            metadata: [(ENCODING.to_owned(), JSON.as_bytes().to_vec())].into(),
            data,
            ..Default::default()
        })
    }
}

impl<T: DeserializeOwned + Serialize + Default> TemporalDeserializable for Checked<T> {
    fn from_payload(
        _: &SerializationContext<'_>,
        payload: Payload,
    ) -> Result<Self, PayloadConversionError> {
        Ok(Self::decode(vec![payload]))
    }

    fn from_payloads(
        _: &SerializationContext<'_>,
        payloads: Vec<Payload>,
    ) -> Result<Self, PayloadConversionError> {
        Ok(Self::decode(payloads))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflows::GreetingInput;

    fn json(data: &str) -> Payload {
        Payload {
            metadata: [(ENCODING.to_owned(), JSON.as_bytes().to_vec())].into(),
            data: data.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    fn reason(payloads: Vec<Payload>) -> String {
        Checked::<GreetingInput>::decode(payloads)
            .into_result()
            .expect_err("undecodable")
    }

    #[test]
    fn a_plain_input_decodes_as_itself() {
        let decoded = Checked::<GreetingInput>::decode(vec![json(r#"{"name":"Ada"}"#)]);
        assert_eq!(decoded.into_result(), Ok(GreetingInput::named("Ada")));
    }

    #[test]
    fn a_wrong_input_gives_the_error_and_the_expected_shape() {
        let r = reason(vec![json(r#""Ada""#)]);
        assert!(
            r.contains("does not decode as GreetingInput") && r.contains("invalid type: string"),
            "{r}"
        );
        assert!(
            r.contains(r#""name":"""#) && r.contains("fail_first_attempts"),
            "{r}"
        );
        let r = reason(vec![json("{not json")]);
        assert!(r.contains("does not decode as GreetingInput"), "{r}");
        let mut binary = json("Ada");
        binary
            .metadata
            .insert(ENCODING.to_owned(), b"binary/plain".to_vec());
        let r = reason(vec![binary]);
        assert!(r.contains("`binary/plain`"), "{r}");
        assert!(reason(vec![]).contains("no input"));
        let r = reason(vec![json("{}"), json("{}")]);
        assert!(r.contains("2 inputs"), "{r}");
    }

    #[test]
    fn it_is_sent_as_the_plain_input() {
        let converter = temporalio_common::data_converters::PayloadConverter::default();
        let data = temporalio_common::data_converters::SerializationContextData::None;
        let ctx = SerializationContext::new(&data, &converter);
        let sent = Checked::from(GreetingInput::named("Ada"))
            .to_payload(&ctx)
            .expect("payload");
        assert_eq!(
            serde_json::from_slice::<GreetingInput>(&sent.data).expect("json"),
            GreetingInput::named("Ada")
        );
        assert_eq!(sent.metadata[ENCODING], JSON.as_bytes());
    }
}
