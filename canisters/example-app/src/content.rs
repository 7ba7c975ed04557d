//! Deterministic synthetic content: users and posts that read like a social network,
//! so images compress like real text does (not like random bytes or zeros).

/// A small, fast, seeded generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` and `stream` (e.g. a post id): the same inputs always give
    /// the same content.
    #[must_use]
    pub fn new(seed: u64, stream: u64) -> Self {
        Self((seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

const WORDS: &[&str] = &[
    "the",
    "a",
    "canister",
    "subnet",
    "backup",
    "restore",
    "today",
    "great",
    "new",
    "release",
    "we",
    "shipped",
    "just",
    "love",
    "this",
    "community",
    "internet",
    "computer",
    "cycles",
    "stable",
    "memory",
    "upgrade",
    "team",
    "build",
    "web3",
    "on",
    "chain",
    "with",
    "and",
    "for",
    "my",
    "first",
    "app",
    "is",
    "live",
    "check",
    "out",
    "thanks",
    "everyone",
    "who",
    "joined",
    "meetup",
    "tonight",
    "coffee",
    "morning",
    "rust",
    "motoko",
    "frontend",
    "vault",
    "snapshot",
    "node",
    "network",
    "fast",
    "secure",
    "data",
    "users",
    "feedback",
    "welcome",
    "hello",
    "world",
    "weekend",
    "hackathon",
    "demo",
    "day",
    "launch",
    "beta",
    "testing",
    "bug",
    "fixed",
    "feature",
    "roadmap",
    "dao",
    "token",
    "governance",
    "proposal",
    "vote",
    "staking",
    "rewards",
    "nft",
    "art",
    "music",
    "video",
    "photo",
    "story",
    "thread",
    "reply",
    "follow",
    "like",
    "share",
    "post",
    "profile",
    "update",
    "news",
];

const TAGS: &[&str] = &[
    "#ICP",
    "#buildonICP",
    "#rust",
    "#web3",
    "#canvault",
    "#dev",
    "#gm",
    "#ship",
];

/// A post's text: 20 to 80 words and a tag or two.
#[must_use]
pub fn post_text(rng: &mut Rng) -> String {
    let words = 20 + rng.below(60);
    let mut text = String::with_capacity(words as usize * 7);
    for i in 0..words {
        if i > 0 {
            text.push(' ');
        }
        text.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
        if rng.below(12) == 0 {
            text.push_str(&rng.below(1000).to_string());
        }
    }
    for _ in 0..1 + rng.below(2) {
        text.push(' ');
        text.push_str(TAGS[rng.below(TAGS.len() as u64) as usize]);
    }
    text
}

/// A user's display name.
#[must_use]
pub fn user_name(rng: &mut Rng, id: u64) -> String {
    format!(
        "{}_{}{}",
        WORDS[rng.below(WORDS.len() as u64) as usize],
        WORDS[rng.below(WORDS.len() as u64) as usize],
        id
    )
}

/// A long-form post (an article): several paragraphs, about 4 KiB.
#[must_use]
pub fn article_text(rng: &mut Rng) -> String {
    let paragraphs = 8 + rng.below(8);
    let mut text = String::with_capacity(4096);
    for p in 0..paragraphs {
        if p > 0 {
            text.push_str("\n\n");
        }
        text.push_str(&post_text(rng));
    }
    text
}

/// Fills `buf` with incompressible pseudo-random bytes.
pub fn random_bytes(rng: &mut Rng, buf: &mut [u8]) {
    for word in buf.chunks_mut(8) {
        let v = rng.next_u64().to_le_bytes();
        word.copy_from_slice(&v[..word.len()]);
    }
}
