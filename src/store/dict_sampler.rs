//! Which records train the zstd dictionaries the store compresses records with. It only
//! chooses samples; the writer trains (on its own thread) and stores the dictionaries.
//!
//! A dictionary trained on the first records stored was trained on whichever content
//! type a backfill happened to deliver first: the same 200,000 collected records took
//! 46 MB or 60 MB compressed depending on that race. The first dictionary still comes
//! early (until it exists records are compressed without one, at about half the ratio);
//! a second one is trained on samples drawn uniformly (reservoir sampling) over the next,
//! longer stretch, when the mix of a tenant's records shows.

/// Samples per dictionary.
pub(super) const DICT_SAMPLES: usize = 2000;
/// Where each training stretch ends, in records offered since the store had that many
/// dictionaries: the first dictionary is trained on the first 2,000 records, the second
/// on 2,000 of the next 20,000. A store with both samples no more.
const STRETCHES: [u64; 2] = [2_000, 20_000];

pub(super) struct DictSampler {
    /// Records offered in the current stretch.
    seen: u64,
    /// Where the current stretch ends.
    stretch: u64,
    samples: Vec<Vec<u8>>,
    /// xorshift64 state: which record replaces which sample (any fixed seed will do).
    rng: u64,
}

impl DictSampler {
    /// A sampler for a store that has `dictionaries` already; None when it needs no more.
    pub(super) fn for_store(dictionaries: usize) -> Option<DictSampler> {
        STRETCHES.get(dictionaries).map(|&stretch| DictSampler {
            seen: 0,
            stretch,
            samples: Vec::with_capacity(DICT_SAMPLES),
            rng: 0x9E37_79B9_7F4A_7C15,
        })
    }

    /// Offers a stored record: kept with probability samples / seen (reservoir sampling),
    /// so every record of the stretch is equally likely to be a sample.
    pub(super) fn offer(&mut self, raw: String) {
        self.seen += 1;
        if self.samples.len() < DICT_SAMPLES {
            self.samples.push(raw.into_bytes());
            return;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let slot = self.rng % self.seen;
        if let Some(s) = self.samples.get_mut(slot as usize) {
            *s = raw.into_bytes();
        }
    }

    /// The samples, once the stretch is over.
    pub(super) fn take_if_done(&mut self) -> Option<Vec<Vec<u8>>> {
        (self.seen >= self.stretch && !self.samples.is_empty())
            .then(|| std::mem::take(&mut self.samples))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_spread_over_the_whole_stretch_not_its_start() {
        let mut s = DictSampler::for_store(1).unwrap();
        for i in 0..STRETCHES[1] {
            assert!(s.take_if_done().is_none(), "done before the stretch ended");
            s.offer(i.to_string());
        }
        let samples = s.take_if_done().expect("done at the end of the stretch");
        assert_eq!(samples.len(), DICT_SAMPLES);
        let picked: Vec<u64> = samples
            .iter()
            .map(|b| String::from_utf8_lossy(b).parse().unwrap())
            .collect();
        // uniform over the stretch: about half the samples from each half
        let late = picked.iter().filter(|&&i| i >= STRETCHES[1] / 2).count();
        assert!(
            (DICT_SAMPLES * 2 / 5..=DICT_SAMPLES * 3 / 5).contains(&late),
            "{late} of {DICT_SAMPLES} samples from the second half"
        );
        assert!(s.take_if_done().is_none(), "samples are handed over once");
    }

    #[test]
    fn a_store_with_every_dictionary_samples_no_more() {
        assert!(DictSampler::for_store(0).is_some());
        assert!(DictSampler::for_store(1).is_some());
        assert!(DictSampler::for_store(STRETCHES.len()).is_none());
    }
}
