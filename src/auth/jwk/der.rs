//! The DER and bit-length arithmetic RSA keys need: an RFC 8017
//! `RSAPublicKey` built from a JWK's `n` and `e` (the form aws-lc-rs parses),
//! and the size of a modulus in bits (the key-size check at load and in
//! `tokengate jwks`).

/// DER of an RFC 8017 `RSAPublicKey ::= SEQUENCE { modulus, publicExponent }`.
pub(super) fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn length(out: &mut Vec<u8>, len: usize) {
        match len {
            0..=0x7f => out.push(len as u8),
            0x80..=0xff => out.extend_from_slice(&[0x81, len as u8]),
            _ => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
        }
    }
    fn integer(out: &mut Vec<u8>, bytes: &[u8]) {
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let digits = &bytes[skip.min(bytes.len().saturating_sub(1))..];
        let pad = digits.first().is_some_and(|b| b & 0x80 != 0);
        out.push(0x02);
        length(out, digits.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(digits);
    }
    let mut body = Vec::with_capacity(n.len() + e.len() + 16);
    integer(&mut body, n);
    integer(&mut body, e);
    let mut der = Vec::with_capacity(body.len() + 4);
    der.push(0x30);
    length(&mut der, body.len());
    der.extend_from_slice(&body);
    der
}

/// The size in bits of a big-endian modulus (leading zero bytes ignored).
pub(crate) fn modulus_bits(modulus: &[u8]) -> usize {
    let skip = modulus.iter().take_while(|&&b| b == 0).count();
    match modulus.get(skip) {
        None => 0,
        Some(&first) => (modulus.len() - skip - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_public_key_der_encodes_integers_minimally() {
        assert_eq!(
            rsa_public_key_der(&[0x00, 0x81], &[0x01, 0x00, 0x01]),
            vec![0x30, 0x09, 0x02, 0x02, 0x00, 0x81, 0x02, 0x03, 0x01, 0x00, 0x01]
        );
        assert_eq!(
            rsa_public_key_der(&[0x7f], &[0x03]),
            vec![0x30, 0x06, 0x02, 0x01, 0x7f, 0x02, 0x01, 0x03]
        );
    }

    #[test]
    fn modulus_bits_ignores_leading_zero_bytes() {
        for (modulus, bits) in [
            (&[][..], 0),
            (&[0, 0][..], 0),
            (&[1][..], 1),
            (&[0, 0x80, 0][..], 16),
            (&[0xff; 256][..], 2048),
        ] {
            assert_eq!(modulus_bits(modulus), bits, "{modulus:?}");
        }
    }
}
