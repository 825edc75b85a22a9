//! Number formatting straight into bytes, without `core::fmt`: the generator writes millions of
//! ids and times, and the formatting machinery was a fifth of its run time.

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The low `digits` hex digits of `v`, zero-padded, lowercase.
pub(super) fn push_hex(out: &mut Vec<u8>, v: u64, digits: usize) {
    let mut buf = [0u8; 16];
    for (i, b) in buf[..digits].iter_mut().enumerate() {
        *b = HEX[((v >> (4 * (digits - 1 - i))) & 0xF) as usize];
    }
    out.extend_from_slice(&buf[..digits]);
}

/// `v` in decimal, zero-padded to at least `width` digits.
pub(super) fn push_dec(out: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    i = i.min(buf.len() - width.min(buf.len()));
    out.extend_from_slice(&buf[i..]);
}

pub(super) fn push_int(out: &mut Vec<u8>, v: i64, width: usize) {
    if v < 0 {
        out.push(b'-');
    }
    push_dec(out, v.unsigned_abs(), width);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_core_fmt() {
        for v in [
            0u64,
            7,
            42,
            999,
            1_000,
            123_456,
            1_767_571_200_000,
            u64::MAX,
        ] {
            for width in [0, 2, 3, 6] {
                let mut s = Vec::new();
                push_dec(&mut s, v, width);
                assert_eq!(s, format!("{v:0width$}").into_bytes());
            }
            let mut s = Vec::new();
            push_hex(&mut s, v, 16);
            assert_eq!(s, format!("{v:016x}").into_bytes());
            let mut s = Vec::new();
            push_hex(&mut s, v & 0xFFFF_FFFF, 8);
            assert_eq!(s, format!("{:08x}", v & 0xFFFF_FFFF).into_bytes());
        }
        let mut s = Vec::new();
        push_int(&mut s, -1_500, 0);
        assert_eq!(s, b"-1500");
    }
}
