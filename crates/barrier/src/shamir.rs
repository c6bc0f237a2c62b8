//! Shamir's secret sharing of a 32-byte secret, byte by byte over GF(256): each byte is the
//! constant term of its own random polynomial of degree threshold − 1, and share `x` holds the
//! 32 polynomials evaluated at `x`. Any `threshold` shares give the secret back by Lagrange
//! interpolation at 0; fewer reveal nothing about it.

use zeroize::Zeroizing;

use crate::gf256;

/// Length of the shared secret and of every share's value.
pub const LEN: usize = 32;

/// A share: its x coordinate and the 32 polynomial values there.
pub type Point = (u8, Zeroizing<[u8; LEN]>);

/// Splits `secret` into `count` shares at x = 1..=count, any `threshold` of which recover it.
/// The caller has checked 1 <= threshold <= count.
pub fn split(secret: &[u8; LEN], threshold: u8, count: u8) -> Result<Vec<Point>, crate::BarrierError> {
    // coefficients[i][0] = secret[i]; the rest random.
    let mut coefficients = Zeroizing::new(vec![[0u8; 256]; LEN]);
    for (i, poly) in coefficients.iter_mut().enumerate() {
        poly[0] = secret[i];
        crate::random(&mut poly[1..usize::from(threshold)])?;
    }
    Ok((1..=count)
        .map(|x| {
            let mut y = Zeroizing::new([0u8; LEN]);
            for (i, poly) in coefficients.iter().enumerate() {
                // Horner: ((a_{m-1} x + a_{m-2}) x + …) x + a_0.
                let mut acc = 0u8;
                for &a in poly[..usize::from(threshold)].iter().rev() {
                    acc = gf256::add(gf256::mul(acc, x), a);
                }
                y[i] = acc;
            }
            (x, y)
        })
        .collect())
}

/// Recovers the secret from points with distinct, non-zero x. With fewer points than the
/// threshold (or a wrong point) the result is some other value: the caller checks it.
pub fn combine(points: &[(u8, &[u8; LEN])]) -> Zeroizing<[u8; LEN]> {
    let mut secret = Zeroizing::new([0u8; LEN]);
    for (j, (xj, yj)) in points.iter().enumerate() {
        // Lagrange basis polynomial for point j, evaluated at 0: Π_{k≠j} x_k / (x_k − x_j).
        let mut basis = 1u8;
        for (k, (xk, _)) in points.iter().enumerate() {
            if k != j {
                basis = gf256::mul(basis, gf256::div(*xk, gf256::add(*xk, *xj)));
            }
        }
        for i in 0..LEN {
            secret[i] = gf256::add(secret[i], gf256::mul(yj[i], basis));
        }
    }
    secret
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_two_of_three_vector() {
        // One byte worked by hand: secret 0x2a, f(x) = 0x2a + 0x07·x in GF(256).
        //   f(1) = 0x2a ^ 0x07 = 0x2d
        //   f(2) = 0x2a ^ (0x07·0x02 = 0x0e) = 0x24
        //   f(3) = 0x2a ^ (0x07·0x03 = 0x0e ^ 0x07 = 0x09) = 0x23
        // Every pair must interpolate back to 0x2a at x = 0.
        let share = |b: u8| {
            let mut y = [0u8; LEN];
            y[0] = b;
            y
        };
        let (s1, s2, s3) = (share(0x2d), share(0x24), share(0x23));
        for pair in [[(1, &s1), (2, &s2)], [(1, &s1), (3, &s3)], [(2, &s2), (3, &s3)]] {
            assert_eq!(combine(&pair)[0], 0x2a);
        }
        // A wrong share gives a wrong secret, not an error: callers must verify.
        let wrong = share(0x2e);
        assert_ne!(combine(&[(1, &wrong), (2, &s2)])[0], 0x2a);
    }

    #[test]
    fn any_threshold_subset_recovers_and_fewer_do_not() {
        let mut secret = [0u8; LEN];
        crate::random(&mut secret).unwrap();
        let shares = split(&secret, 3, 5).unwrap();
        assert_eq!(shares.len(), 5);
        for a in 0..5 {
            for b in a + 1..5 {
                for c in b + 1..5 {
                    let pts = [
                        (shares[a].0, &*shares[a].1),
                        (shares[b].0, &*shares[b].1),
                        (shares[c].0, &*shares[c].1),
                    ];
                    assert_eq!(*combine(&pts), secret);
                }
                let two = [(shares[a].0, &*shares[a].1), (shares[b].0, &*shares[b].1)];
                assert_ne!(*combine(&two), secret);
            }
        }
        // All five together also work.
        let all: Vec<_> = shares.iter().map(|(x, y)| (*x, &**y)).collect();
        assert_eq!(*combine(&all), secret);
    }

    #[test]
    fn threshold_one_copies_the_secret() {
        let secret = [7u8; LEN];
        for (_, y) in split(&secret, 1, 3).unwrap() {
            assert_eq!(*y, secret);
        }
    }
}
