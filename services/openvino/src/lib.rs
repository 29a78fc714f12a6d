//! OpenVINO for the embedder: the same MiniLM graph (`model.onnx`, read by OpenVINO's ONNX
//! frontend) compiled for the CPU by OpenVINO's runtime, whose C API
//! (`libopenvino_c.so` from PyPI's `openvino` wheel, linked by bootstrap) is loaded at run
//! time. On a CPU with AMX or AVX-512 BF16 the CPU plugin computes in bf16 by default,
//! which is what makes it fast; elsewhere it computes in f32 and brings little over ONNX
//! Runtime, so the engine choice looks at [`OpenVinoEncoder::precision`].
//!
//! Only the dozen functions the encoder needs are bound, by the C API's published
//! signatures; every handle is freed on drop and every failing call is turned into an error
//! carrying OpenVINO's own message.

mod api;

use std::ffi::{CStr, CString, c_char, c_void};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::Arc;

use anyhow::Context as _;

use api::{Api, Handle, Port, Shape, api};

/// Where bootstrap links the OpenVINO C library.
pub fn default_library() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/apex/tools/lib/libopenvino_c.so")
}

/// Whether this CPU computes in bf16 (AMX or AVX-512 BF16), where OpenVINO's CPU plugin
/// does by default: read from `/proc/cpuinfo`'s flags (false when it cannot be read).
pub fn cpu_has_bf16() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
        info.lines().filter(|l| l.starts_with("flags")).any(|l| {
            l.split_whitespace()
                .any(|f| f == "amx_bf16" || f == "avx512_bf16")
        })
    })
}

/// One compiled model and its inference request: one batch at a time, like an ONNX Runtime
/// session.
pub struct OpenVinoEncoder {
    api: Arc<Api>,
    core: Handle,
    compiled: Handle,
    request: Handle,
    precision: String,
    /// `ov_element_type_e` values of the graph's inputs (i64) and output (f32), as this
    /// library numbers them: the enum changed between releases, so they are asked for.
    input_type: u32,
    output_type: u32,
}

// SAFETY: the handles are used by one thread at a time (`&mut self`); OpenVINO's objects
// may be used from any thread.
unsafe impl Send for OpenVinoEncoder {}

impl std::fmt::Debug for OpenVinoEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenVinoEncoder")
            .field("precision", &self.precision)
            .finish_non_exhaustive()
    }
}

fn c_string(s: &str) -> anyhow::Result<CString> {
    CString::new(s).with_context(|| format!("{s:?} holds a NUL byte"))
}

impl OpenVinoEncoder {
    /// Reads `graph` and compiles it for the CPU with `threads` inference threads, one
    /// stream, for latency; `precision` is OpenVINO's inference precision hint (`None`
    /// leaves the CPU plugin's default: bf16 where the CPU has it).
    pub fn load(
        library: &Path,
        graph: &Path,
        threads: usize,
        precision: Option<&str>,
    ) -> anyhow::Result<Self> {
        let api = api(library)?;
        let graph_c = c_string(&graph.to_string_lossy())?;
        let mut encoder = Self {
            api: api.clone(),
            core: ptr::null_mut(),
            compiled: ptr::null_mut(),
            request: ptr::null_mut(),
            precision: String::new(),
            input_type: 0,
            output_type: 0,
        };
        let threads = c_string(&threads.max(1).to_string())?;
        let hint = c_string(precision.unwrap_or(""))?;
        // SAFETY: every out-pointer is a live local; every handle passed in was created by
        // the same library and is freed once, in Drop (the model right after compiling).
        unsafe {
            api.check((api.core_create)(&mut encoder.core), "creating a core")?;
            let mut model: Handle = ptr::null_mut();
            api.check(
                (api.read_model)(encoder.core, graph_c.as_ptr(), ptr::null(), &mut model),
                &format!("reading {}", graph.display()),
            )?;
            let status = if precision.is_some() {
                (api.compile_model)(
                    encoder.core,
                    model,
                    c"CPU".as_ptr(),
                    8,
                    &mut encoder.compiled,
                    c"INFERENCE_NUM_THREADS".as_ptr(),
                    threads.as_ptr(),
                    c"NUM_STREAMS".as_ptr(),
                    c"1".as_ptr(),
                    c"PERFORMANCE_HINT".as_ptr(),
                    c"LATENCY".as_ptr(),
                    c"INFERENCE_PRECISION_HINT".as_ptr(),
                    hint.as_ptr(),
                )
            } else {
                (api.compile_model)(
                    encoder.core,
                    model,
                    c"CPU".as_ptr(),
                    6,
                    &mut encoder.compiled,
                    c"INFERENCE_NUM_THREADS".as_ptr(),
                    threads.as_ptr(),
                    c"NUM_STREAMS".as_ptr(),
                    c"1".as_ptr(),
                    c"PERFORMANCE_HINT".as_ptr(),
                    c"LATENCY".as_ptr(),
                )
            };
            (api.model_free)(model);
            api.check(
                status,
                &format!("compiling {} for the CPU", graph.display()),
            )?;
            let mut value: *mut c_char = ptr::null_mut();
            api.check(
                (api.compiled_property)(
                    encoder.compiled,
                    c"INFERENCE_PRECISION_HINT".as_ptr(),
                    &mut value,
                ),
                "reading the inference precision",
            )?;
            if !value.is_null() {
                encoder.precision = CStr::from_ptr(value).to_string_lossy().into_owned();
                (api.free)(value);
            }
            api.check(
                (api.create_request)(encoder.compiled, &mut encoder.request),
                "creating an inference request",
            )?;
            encoder.input_type = encoder.port_type(Port::Input(c"input_ids"))?;
            let mask = encoder.port_type(Port::Input(c"attention_mask"))?;
            anyhow::ensure!(
                mask == encoder.input_type,
                "the graph's input_ids and attention_mask differ in type"
            );
            encoder.output_type = encoder.port_type(Port::Output(0))?;
        }
        Ok(encoder)
    }

    /// The element type of an input (by name) or output (by index) of the compiled model.
    fn port_type(&self, port: Port) -> anyhow::Result<u32> {
        let api = &self.api;
        let mut handle: Handle = ptr::null_mut();
        let mut element = 0u32;
        // SAFETY: `compiled` is live; the port is freed once after its type is read.
        unsafe {
            match port {
                Port::Input(name) => api.check(
                    (api.input_by_name)(self.compiled, name.as_ptr(), &mut handle),
                    &format!("finding the graph's input {name:?}"),
                )?,
                Port::Output(index) => api.check(
                    (api.output_by_index)(self.compiled, index, &mut handle),
                    "finding the graph's output",
                )?,
            }
            let read = api.check((api.port_type)(handle, &mut element), "port type");
            (api.port_free)(handle);
            read?;
        }
        Ok(element)
    }

    /// The precision the CPU plugin computes in: `bf16`, `f32`, …
    pub fn precision(&self) -> &str {
        &self.precision
    }

    /// Embeds one padded batch: `ids` and `mask` are `batch` rows of `seq` token ids and
    /// attention flags; the vectors are pooled and unit length.
    pub fn infer(
        &mut self,
        ids: &mut [i64],
        mask: &mut [i64],
        batch: usize,
        seq: usize,
    ) -> anyhow::Result<Vec<Vec<f32>>> {
        if batch == 0 {
            return Ok(Vec::new());
        }
        anyhow::ensure!(
            ids.len() == batch * seq && mask.len() == batch * seq,
            "ids and mask must hold {batch} rows of {seq}"
        );
        let api = self.api.clone();
        let dims = [batch as i64, seq as i64];
        // SAFETY: the tensors wrap `ids` and `mask`, which outlive the inference; each
        // tensor and shape is freed once; the output is read within its reported size.
        unsafe {
            let mut shape = Shape {
                rank: 0,
                dims: ptr::null_mut(),
            };
            api.check((api.shape_create)(2, dims.as_ptr(), &mut shape), "shape")?;
            let mut inputs: [Handle; 2] = [ptr::null_mut(); 2];
            let mut made = api.check(
                (api.tensor_from_host)(
                    self.input_type,
                    Shape {
                        rank: shape.rank,
                        dims: shape.dims,
                    },
                    ids.as_mut_ptr().cast(),
                    &mut inputs[0],
                ),
                "input tensor",
            );
            if made.is_ok() {
                made = api.check(
                    (api.tensor_from_host)(
                        self.input_type,
                        Shape {
                            rank: shape.rank,
                            dims: shape.dims,
                        },
                        mask.as_mut_ptr().cast(),
                        &mut inputs[1],
                    ),
                    "mask tensor",
                );
            }
            (api.shape_free)(&mut shape);
            // The graph's inputs are i64, which is what the buffers hold.
            let made = made.and_then(|()| {
                let mut bytes = 0usize;
                api.check((api.tensor_bytes)(inputs[0], &mut bytes), "input size")?;
                let want = std::mem::size_of_val(ids);
                anyhow::ensure!(
                    bytes == want,
                    "the graph's input_ids take {bytes} bytes for {} tokens, not {want} (i64)",
                    ids.len()
                );
                Ok(())
            });
            let result = made.and_then(|()| self.run(&inputs, batch));
            for t in inputs {
                if !t.is_null() {
                    (api.tensor_free)(t);
                }
            }
            result
        }
    }

    /// # Safety
    /// `inputs` are live tensors of ids and mask for `batch` windows.
    unsafe fn run(&self, inputs: &[Handle; 2], batch: usize) -> anyhow::Result<Vec<Vec<f32>>> {
        let api = &self.api;
        // SAFETY: the request and the input tensors are live (the caller's contract); the
        // output tensor is freed once, after its data, checked against its size, is copied.
        unsafe {
            api.check(
                (api.set_tensor)(self.request, c"input_ids".as_ptr(), inputs[0]),
                "setting input_ids",
            )?;
            api.check(
                (api.set_tensor)(self.request, c"attention_mask".as_ptr(), inputs[1]),
                "setting attention_mask",
            )?;
            api.check((api.infer)(self.request), "inference")?;
            let mut out: Handle = ptr::null_mut();
            api.check(
                (api.output)(self.request, 0, &mut out),
                "reading the output",
            )?;
            let read = (|| {
                let mut shape = Shape {
                    rank: 0,
                    dims: ptr::null_mut(),
                };
                api.check((api.tensor_shape)(out, &mut shape), "output shape")?;
                let dims = if shape.dims.is_null() || shape.rank <= 0 {
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(shape.dims, shape.rank as usize).to_vec()
                };
                (api.shape_free)(&mut shape);
                let [rows, dim] = dims[..] else {
                    anyhow::bail!("unexpected output shape {dims:?}");
                };
                anyhow::ensure!(
                    rows as usize == batch && dim > 0,
                    "unexpected output shape {dims:?}"
                );
                let mut element = 0u32;
                api.check((api.tensor_type)(out, &mut element), "output type")?;
                anyhow::ensure!(
                    element == self.output_type,
                    "the output's element type is {element}, not the graph's ({})",
                    self.output_type
                );
                let mut bytes = 0usize;
                api.check((api.tensor_bytes)(out, &mut bytes), "output size")?;
                let want = batch * dim as usize * size_of::<f32>();
                anyhow::ensure!(
                    bytes == want,
                    "the output holds {bytes} bytes, not {want} (f32 vectors)"
                );
                let mut data: *mut c_void = ptr::null_mut();
                api.check((api.tensor_data)(out, &mut data), "output data")?;
                anyhow::ensure!(!data.is_null(), "the output has no data");
                let values = std::slice::from_raw_parts(data.cast::<f32>(), batch * dim as usize);
                Ok(values
                    .chunks_exact(dim as usize)
                    .map(<[f32]>::to_vec)
                    .collect())
            })();
            (api.tensor_free)(out);
            read
        }
    }
}

impl Drop for OpenVinoEncoder {
    fn drop(&mut self) {
        let api = &self.api;
        // SAFETY: each handle was created by this library and is freed once.
        unsafe {
            if !self.request.is_null() {
                (api.request_free)(self.request);
            }
            if !self.compiled.is_null() {
                (api.compiled_free)(self.compiled);
            }
            if !self.core.is_null() {
                (api.core_free)(self.core);
            }
        }
    }
}
