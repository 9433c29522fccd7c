//! The token builder: a [`Jwt`] signed by its key, or broken on purpose
//! (raw header or claims text, header members set or removed, a signature
//! of our choosing).

use super::*;

#[derive(Clone)]
enum Signature {
    /// This key's signature over the signing input.
    Valid,
    /// ECDSA in ASN.1 DER instead of R||S.
    Der,
    /// Another key's signature.
    By(Key),
    Bytes(Vec<u8>),
    /// The third segment verbatim.
    Segment(String),
}

/// A token under construction; [`Jwt::encode`] produces the compact form.
#[derive(Clone)]
pub struct Jwt {
    key: Key,
    header: Value,
    raw_header: Option<String>,
    claims: Value,
    raw_claims: Option<String>,
    signature: Signature,
}

impl Jwt {
    /// `claims` under `key`'s default header, signed by `key`.
    pub(super) fn new(key: &Key, claims: &Value) -> Jwt {
        Jwt {
            key: key.clone(),
            header: key.header(),
            raw_header: None,
            claims: claims.clone(),
            raw_claims: None,
            signature: Signature::Valid,
        }
    }

    /// Sets a header member; `Value::Null` removes it.
    pub fn header(mut self, name: &str, value: Value) -> Jwt {
        let header = self.header.as_object_mut().expect("header object");
        if value.is_null() {
            header.remove(name);
        } else {
            header.insert(name.to_string(), value);
        }
        self
    }

    /// Replaces the whole header object.
    pub fn header_object(mut self, header: Map<String, Value>) -> Jwt {
        self.header = Value::Object(header);
        self
    }

    /// The header segment encodes exactly this text.
    pub fn raw_header(mut self, text: &str) -> Jwt {
        self.raw_header = Some(text.to_string());
        self
    }

    /// The claims segment encodes exactly this text.
    pub fn raw_claims(mut self, text: &str) -> Jwt {
        self.raw_claims = Some(text.to_string());
        self
    }

    /// Signs ECDSA in DER form instead of raw R||S.
    pub fn der_signature(mut self) -> Jwt {
        self.signature = Signature::Der;
        self
    }

    /// Signs with `other` (whatever the header says).
    pub fn signed_by(mut self, other: &Key) -> Jwt {
        self.signature = Signature::By(other.clone());
        self
    }

    /// Uses these bytes as the signature.
    pub fn signature_bytes(mut self, bytes: Vec<u8>) -> Jwt {
        self.signature = Signature::Bytes(bytes);
        self
    }

    /// Uses this text verbatim as the third segment.
    pub fn signature_segment(mut self, text: &str) -> Jwt {
        self.signature = Signature::Segment(text.to_string());
        self
    }

    /// `base64url(header) "." base64url(claims)`.
    pub fn signing_input(&self) -> String {
        let header = self
            .raw_header
            .clone()
            .unwrap_or_else(|| self.header.to_string());
        let claims = self
            .raw_claims
            .clone()
            .unwrap_or_else(|| self.claims.to_string());
        format!("{}.{}", b64(header), b64(claims))
    }

    /// The compact serialization: signed by `jsonwebtoken::encode` where
    /// the token is well-formed, else put together by hand.
    pub fn encode(&self) -> String {
        self.encode_standard()
            .unwrap_or_else(|| self.encode_by_hand())
    }

    /// `jsonwebtoken::encode` of this token, or `None` when it is one
    /// `encode` cannot produce: raw header or claims text, a header
    /// `jsonwebtoken::Header` cannot carry as it is, or a signature other
    /// than this key's own under its own `alg`.
    pub(super) fn encode_standard(&self) -> Option<String> {
        let own = matches!(self.signature, Signature::Valid)
            && self.header.get("alg") == Some(&json!(self.key.alg().name()));
        if !own || self.raw_header.is_some() || self.raw_claims.is_some() {
            return None;
        }
        let header = standard_header(&self.header)?;
        encode(&header, &self.claims, &self.key.encoding_key())
    }

    /// Hand-built, for the malformed and unusual tokens `encode` cannot
    /// produce (see [`Jwt::encode_standard`]).
    fn encode_by_hand(&self) -> String {
        let input = self.signing_input();
        let signature = match &self.signature {
            Signature::Valid => b64(self.key.sign(input.as_bytes())),
            Signature::Der => b64(self.key.sign_der(input.as_bytes())),
            Signature::By(other) => b64(other.sign(input.as_bytes())),
            Signature::Bytes(bytes) => b64(bytes),
            Signature::Segment(text) => text.clone(),
        };
        format!("{input}.{signature}")
    }
}
