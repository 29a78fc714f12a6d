//! A local certificate authority for `apex up --tls` and the tests: a CA, a server
//! certificate for `localhost`, `127.0.0.1` and `::1` that every service of the local mesh
//! presents, and a client certificate the worker, the gateway and the CLI present (mutual
//! TLS). Keys are written readable by their owner only. Not for production: there the
//! deployer's PKI (cert-manager, a service mesh, a cloud CA) issues the certificates and the
//! settings name its files.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use super::{ClientTlsSettings, ServerTlsSettings};

/// The names the local server certificate is valid for.
pub const SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// How long the local certificates are valid.
const VALID_DAYS: i64 = 365;

/// The files of a local PKI in one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPki {
    pub dir: PathBuf,
}

impl LocalPki {
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server-key.pem")
    }
    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("client.pem")
    }
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client-key.pem")
    }

    fn files(&self) -> [PathBuf; 5] {
        [
            self.ca(),
            self.server_cert(),
            self.server_key(),
            self.client_cert(),
            self.client_key(),
        ]
    }

    /// The PKI in `dir`, made there first when any of its files is missing.
    pub fn ensure(dir: &Path) -> anyhow::Result<Self> {
        let pki = Self {
            dir: dir.to_owned(),
        };
        if pki.files().iter().all(|f| f.is_file()) {
            return Ok(pki);
        }
        Self::generate(dir)
    }

    /// A new CA and certificates in `dir` (replacing what was there).
    pub fn generate(dir: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let pki = Self {
            dir: dir.to_owned(),
        };
        let ca_key = KeyPair::generate()?;
        let ca_params = ca_params()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate()?;
        let server = leaf_params(
            &SERVER_NAMES,
            "apex local service",
            ExtendedKeyUsagePurpose::ServerAuth,
        )?
        .signed_by(&server_key, &issuer)?;
        let client_key = KeyPair::generate()?;
        let client = leaf_params(
            &["apex-client"],
            "apex local client",
            ExtendedKeyUsagePurpose::ClientAuth,
        )?
        .signed_by(&client_key, &issuer)?;

        write(&pki.ca(), &ca_cert.pem(), false)?;
        write(&pki.server_cert(), &server.pem(), false)?;
        write(&pki.server_key(), &server_key.serialize_pem(), true)?;
        write(&pki.client_cert(), &client.pem(), false)?;
        write(&pki.client_key(), &client_key.serialize_pem(), true)?;
        Ok(pki)
    }

    /// Server settings presenting the local server certificate; `mutual` demands a client
    /// certificate this CA signed.
    pub fn server_settings(&self, mutual: bool) -> ServerTlsSettings {
        ServerTlsSettings {
            cert: self.server_cert().display().to_string(),
            key: self.server_key().display().to_string(),
            client_ca: if mutual {
                self.ca().display().to_string()
            } else {
                String::new()
            },
            ..ServerTlsSettings::default()
        }
    }

    /// Client settings trusting this CA and presenting the local client certificate.
    pub fn client_settings(&self) -> ClientTlsSettings {
        ClientTlsSettings {
            ca: self.ca().display().to_string(),
            cert: self.client_cert().display().to_string(),
            key: self.client_key().display().to_string(),
            ..ClientTlsSettings::default()
        }
    }
}

fn validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    // A day back: a clock a little behind still accepts a certificate made just now.
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(VALID_DAYS);
}

fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "Apex Ingest local CA");
    name.push(DnType::OrganizationName, "Apex Ingest (local stack)");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params);
    Ok(params)
}

fn leaf_params(
    names: &[&str],
    common_name: &str,
    usage: ExtendedKeyUsagePurpose,
) -> anyhow::Result<CertificateParams> {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names)?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params);
    Ok(params)
}

/// Writes `text` to `path`; a `secret` is readable by its owner only (written so from the
/// start, never briefly world-readable).
fn write(path: &Path, text: &str, secret: bool) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let _ = fs::remove_file(path);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    if secret {
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
