//! Arithmetic in GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1 (0x11b).
//!
//! Written here rather than taken from a crate: the maintained Shamir crates either pull in a
//! large generic stack (vsss-rs) or use log/exp tables, whose secret-indexed lookups leak
//! through cache timing. These functions branch and index on public data only. They are
//! checked against the worked examples of FIPS-197 §4.2.

/// Addition (and subtraction): XOR.
#[inline]
pub fn add(a: u8, b: u8) -> u8 {
    a ^ b
}

/// Multiplication, constant-time ("Russian peasant" with masks instead of branches).
#[inline]
pub fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0u8;
    for _ in 0..8 {
        // If the low bit of b is set, add a: mask is 0xff or 0x00.
        product ^= a & (b & 1).wrapping_neg();
        // a *= x, reducing by 0x11b when the high bit falls out.
        let carry = (a >> 7).wrapping_neg();
        a = (a << 1) ^ (0x1b & carry);
        b >>= 1;
    }
    product
}

/// Multiplicative inverse: a^254 (a^255 = 1 for a ≠ 0). Returns 0 for 0, which callers never
/// pass (interpolation divides by differences of distinct, non-zero x coordinates).
pub fn inv(a: u8) -> u8 {
    // Square-and-multiply over the fixed exponent 254 = 0b1111_1110: the sequence of
    // operations does not depend on `a`.
    let mut result = 1u8;
    let mut base = a;
    let mut exp = 254u8;
    for _ in 0..8 {
        let take = (exp & 1).wrapping_neg();
        let multiplied = mul(result, base);
        result = (multiplied & take) | (result & !take);
        base = mul(base, base);
        exp >>= 1;
    }
    result
}

/// Division a / b, b ≠ 0.
#[inline]
pub fn div(a: u8, b: u8) -> u8 {
    mul(a, inv(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fips_197_worked_examples() {
        // FIPS-197 §4.2: {57} • {83} = {c1}, and §4.2.1: {57} • {13} = {fe}.
        assert_eq!(mul(0x57, 0x83), 0xc1);
        assert_eq!(mul(0x57, 0x13), 0xfe);
        // §4.2.1's table of xtime: {57}·{02} = {ae}, ·{04} = {47}, ·{08} = {8e}, ·{10} = {07}.
        assert_eq!(mul(0x57, 0x02), 0xae);
        assert_eq!(mul(0x57, 0x04), 0x47);
        assert_eq!(mul(0x57, 0x08), 0x8e);
        assert_eq!(mul(0x57, 0x10), 0x07);
        // The S-box construction's inverse of {53} is {ca} (a common worked example).
        assert_eq!(inv(0x53), 0xca);
    }

    #[test]
    fn field_laws_hold_for_every_element() {
        for a in 0..=255u8 {
            assert_eq!(mul(a, 1), a);
            assert_eq!(mul(a, 0), 0);
            if a != 0 {
                assert_eq!(mul(a, inv(a)), 1, "inverse of {a:#x}");
                assert_eq!(div(a, a), 1);
            }
            for b in [1u8, 2, 3, 0x53, 0xca, 0xff] {
                assert_eq!(mul(a, b), mul(b, a));
            }
        }
    }
}
