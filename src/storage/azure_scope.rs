//! Azure encryption scopes (`azure_encryption_scope` in `[transfer.options]`): the
//! `x-ms-encryption-scope` header on every blob batchwin writes.
//!
//! object_store 0.14 has no setting for it, and a header added through the HTTP client's
//! default headers is added after the request is signed with the account key, so the service
//! refuses it (403, measured against Azurite). This module is the store's HTTP client instead:
//! it adds the header to each write (Put Blob, Put Block, Put Block List, Copy Blob) and, when
//! the request is signed with the account key, signs it again with object_store's own
//! [`AzureAuthorizer`], so the header is part of the signature. Requests authorized by a bearer
//! token or a SAS carry no signature over headers and are sent as they are.

use std::sync::Arc;

use async_trait::async_trait;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use object_store::ClientOptions;
use object_store::azure::{AzureAccessKey, AzureAuthorizer, AzureCredential};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpService,
    ReqwestConnector,
};

const SCOPE: HeaderName = HeaderName::from_static("x-ms-encryption-scope");

/// The account key of Azurite, the storage emulator: public, the same in every installation
/// (<https://learn.microsoft.com/azure/storage/common/storage-use-azurite>). object_store signs
/// with it when `azure_storage_use_emulator` is set and no key is given.
const EMULATOR_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The HTTP connector of an Azure store whose writes name an encryption scope.
#[derive(Debug)]
pub(super) struct EncryptionScope {
    scope: HeaderValue,
    /// The account key requests are signed with, when they are (see [`Self::new`]).
    key: Option<Arc<AzureCredential>>,
}

impl EncryptionScope {
    /// `access_key` is the store's configured account key (`azure_storage_access_key` or the
    /// environment); `emulator` whether it talks to the emulator, whose key is known.
    pub fn new(scope: &str, access_key: Option<&str>, emulator: bool) -> Result<Self, String> {
        if !valid_scope_name(scope) {
            return Err(format!(
                "`azure_encryption_scope` must be the name of an encryption scope: 3 to 63 \
                 lower-case letters, digits and dashes (each dash between two of the others), \
                 not `{scope}`"
            ));
        }
        let key = match (access_key, emulator) {
            (Some(k), _) => Some(k),
            (None, true) => Some(EMULATOR_KEY),
            (None, false) => None,
        };
        let key = key
            .map(|k| {
                AzureAccessKey::try_new(k)
                    .map(|k| Arc::new(AzureCredential::AccessKey(k)))
                    .map_err(|e| format!("the Azure account key: {e}"))
            })
            .transpose()?;
        Ok(EncryptionScope {
            scope: HeaderValue::from_str(scope).expect("checked: letters and digits"),
            key,
        })
    }
}

impl HttpConnector for EncryptionScope {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(Scoped {
            inner: ReqwestConnector::default().connect(options)?,
            scope: self.scope.clone(),
            key: self.key.clone(),
        }))
    }
}

#[derive(Debug)]
struct Scoped {
    inner: HttpClient,
    scope: HeaderValue,
    key: Option<Arc<AzureCredential>>,
}

#[async_trait]
impl HttpService for Scoped {
    async fn call(&self, mut req: HttpRequest) -> Result<HttpResponse, HttpError> {
        if writes_blob(&req) {
            req.headers_mut().insert(SCOPE, self.scope.clone());
            if let Some(account) = shared_key_account(&req) {
                let Some(key) = &self.key else {
                    return Err(HttpError::new(
                        HttpErrorKind::Request,
                        std::io::Error::other(
                            "a request signed with an account key batchwin was not given \
                             cannot carry an encryption scope; set `azure_storage_access_key`",
                        ),
                    ));
                };
                req.headers_mut().remove(AUTHORIZATION);
                AzureAuthorizer::new(key, &account)
                    .try_authorize(&mut req)
                    .map_err(|e| HttpError::new(HttpErrorKind::Request, e))?;
            }
        }
        self.inner.execute(req).await
    }
}

/// The service's rule for scope names: 3 to 63 lower-case letters, digits and dashes, every dash
/// between a letter or digit on each side. A name outside it would only be refused by every
/// write, after the day's work.
fn valid_scope_name(s: &str) -> bool {
    let word = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (3..=63).contains(&s.len())
        && s.bytes().all(|b| word(b) || b == b'-')
        && s.split('-').all(|part| !part.is_empty())
}

/// Whether a request writes a blob: every PUT but a container's own (`restype=container`,
/// whose scope is the container's default, set when it is created).
fn writes_blob(req: &HttpRequest) -> bool {
    req.method() == http::Method::PUT
        && !req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "restype=container"))
}

/// The account of a request signed with the account key (`SharedKey ACCOUNT:SIGNATURE`).
fn shared_key_account(req: &HttpRequest) -> Option<String> {
    let auth = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let rest = auth.strip_prefix("SharedKey ")?;
    Some(rest.split_once(':')?.0.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, uri: &str, auth: Option<&str>) -> HttpRequest {
        let mut b = http::Request::builder().method(method).uri(uri);
        if let Some(a) = auth {
            b = b.header(AUTHORIZATION, a);
        }
        b.body(Vec::<u8>::new().into()).unwrap()
    }

    #[test]
    fn scope_names_are_checked() {
        for good in ["scope1", "day-data-2", "abc", &"x".repeat(63)] {
            assert!(EncryptionScope::new(good, None, false).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            "-dash",
            "dash-",
            "two--dashes",
            "Upper",
            "a b c",
            &"x".repeat(64),
        ] {
            let e = EncryptionScope::new(bad, None, false).unwrap_err();
            assert!(e.contains("3 to 63"), "{e}");
        }
        let e = EncryptionScope::new("scope1", Some("not base64!"), false).unwrap_err();
        assert!(e.contains("account key"), "{e}");
    }

    #[test]
    fn only_blob_writes_carry_the_scope() {
        let u = "http://a.blob.core.windows.net/c/b.csv";
        assert!(writes_blob(&request("PUT", u, None)));
        assert!(writes_blob(&request(
            "PUT",
            &format!("{u}?comp=blocklist"),
            None
        )));
        assert!(!writes_blob(&request("GET", u, None)));
        assert!(!writes_blob(&request("DELETE", u, None)));
        assert!(!writes_blob(&request(
            "PUT",
            "http://a.blob.core.windows.net/c?restype=container",
            None
        )));
    }

    #[test]
    fn the_signing_account_is_read_from_a_shared_key_authorization() {
        let u = "http://127.0.0.1:10000/devstoreaccount1/c/b";
        let signed = request("PUT", u, Some("SharedKey devstoreaccount1:c2ln"));
        assert_eq!(
            shared_key_account(&signed).as_deref(),
            Some("devstoreaccount1")
        );
        assert_eq!(
            shared_key_account(&request("PUT", u, Some("Bearer t"))),
            None
        );
        assert_eq!(shared_key_account(&request("PUT", u, None)), None);
    }
}
