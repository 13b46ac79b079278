//! A tiny deterministic PRNG (SplitMix64) and hash mixing, owned by the simulator so that
//! the same seed gives byte-identical records on every build and platform. It must not be
//! used for anything secret.

/// SplitMix64: fast, good enough for synthetic data, stable forever.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

pub(crate) fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Mixes several values into one 64-bit seed.
pub(crate) fn mix(parts: &[u64]) -> u64 {
    let mut h = 0x005E_ED0F_5EED_u64;
    for p in parts {
        h = splitmix(h ^ splitmix(*p));
    }
    h
}

/// Hashes a string to 64 bits (FNV-1a then mixed).
pub(crate) fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    splitmix(h)
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when n is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `a..=b`.
    pub(crate) fn range(&mut self, a: i64, b: i64) -> i64 {
        if b <= a {
            return a;
        }
        a + self.below((b - a + 1) as u64) as i64
    }

    pub(crate) fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Index drawn by weights.
    pub(crate) fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        let mut x = self.below(total);
        for (i, w) in weights.iter().enumerate() {
            let w = u64::from(*w);
            if x < w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }

    pub(crate) fn u128(&mut self) -> u128 {
        (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64())
    }

    /// A random version-4 style GUID, lower case, hyphenated.
    pub(crate) fn guid(&mut self) -> String {
        guid_string(v4(self.u128()))
    }

    pub(crate) fn hex_upper(&mut self, len: usize) -> String {
        const H: &[u8] = b"0123456789ABCDEF";
        (0..len)
            .map(|_| H[self.below(16) as usize] as char)
            .collect()
    }

    pub(crate) fn digits(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| (b'0' + self.below(10) as u8) as char)
            .collect()
    }

    /// Poisson for small means, normal approximation above 30.
    pub(crate) fn poisson(&mut self, lambda: f64) -> u64 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda > 30.0 {
            // Box-Muller
            let u1 = self.f64().max(1e-12);
            let u2 = self.f64();
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            return (lambda + z * lambda.sqrt()).round().max(0.0) as u64;
        }
        let l = (-lambda).exp();
        let mut k = 0u64;
        let mut p = 1.0;
        loop {
            p *= self.f64();
            if p <= l {
                return k;
            }
            k += 1;
        }
    }
}

/// Sets the version (4) and variant bits of a 128-bit value.
pub(crate) fn v4(x: u128) -> u128 {
    (x & !(0xF000u128 << 64) & !(0xC000u128 << 48)) | (0x4000u128 << 64) | (0x8000u128 << 48)
}

pub(crate) fn guid_string(x: u128) -> String {
    uuid::Uuid::from_u128(x).hyphenated().to_string()
}

/// The de-duplication key of a record Id: the GUID's value, or a hash for other strings.
pub(crate) fn id_key(id: &str) -> u128 {
    match uuid::Uuid::parse_str(id) {
        Ok(u) => u.as_u128(),
        Err(_) => (u128::from(hash_str(id)) << 64) | u128::from(hash_str(&format!("{id}#"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_spread() {
        let mut a = Rng::new(mix(&[1, 2]));
        let mut b = Rng::new(mix(&[1, 2]));
        assert_eq!(a.next_u64(), b.next_u64());
        assert_ne!(mix(&[1, 2]), mix(&[2, 1]));
        let mut r = Rng::new(7);
        for _ in 0..1000 {
            assert!(r.below(10) < 10);
            let x = r.range(3, 5);
            assert!((3..=5).contains(&x));
        }
        let g = r.guid();
        assert_eq!(id_key(&g), uuid::Uuid::parse_str(&g).unwrap().as_u128());
        assert_eq!(uuid::Uuid::parse_str(&g).unwrap().get_version_num(), 4);
        let mean: f64 = (0..2000).map(|_| r.poisson(4.0) as f64).sum::<f64>() / 2000.0;
        assert!((3.5..4.5).contains(&mean), "{mean}");
    }
}
