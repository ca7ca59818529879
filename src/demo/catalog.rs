//! The demo's fixed world: models as providers report them, the twelve teams with their apps
//! and features, and the incidents planted in the data.
//!
//! Owns names and shapes only (which model a feature calls, how long its prompts are). It must
//! not draw random numbers or build Arrow data; the approximate prices here size budgets and
//! never price a row (the price book does that).

/// How a provider reports cached input, which decides which cache columns a row can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStyle {
    /// Automatic prompt caching, reads only (OpenAI, Azure OpenAI).
    Automatic,
    /// Explicit cache breakpoints: writes on first use, reads after (Anthropic, Claude on Bedrock).
    Explicit,
    /// Implicit context caching, reads only (Gemini, Nova).
    Implicit,
    /// No caching (Llama on Bedrock, embeddings, the internal model).
    None,
}

/// One model id as its provider reports it.
#[derive(Debug, Clone, Copy)]
pub struct Model {
    /// Canonical provider name.
    pub provider: &'static str,
    /// Model id exactly as the provider's usage data spells it.
    pub id: &'static str,
    /// Approximate list USD per million input / output / cache-read / cache-write tokens,
    /// used only to size the demo budgets.
    pub price: [f64; 4],
    /// Base latency and milliseconds per output token.
    pub latency: (f64, f64),
    /// Reasoning model: part of the output is reasoning tokens.
    pub reasoning: bool,
    /// Cache semantics.
    pub cache: CacheStyle,
}

const fn m(
    provider: &'static str,
    id: &'static str,
    price: [f64; 4],
    latency: (f64, f64),
    reasoning: bool,
    cache: CacheStyle,
) -> Model {
    Model {
        provider,
        id,
        price,
        latency,
        reasoning,
        cache,
    }
}

use CacheStyle::{Automatic, Explicit, Implicit, None as NoCache};

/// The model id no price catalog knows: rows on it must show up as unpriced.
pub const UNPRICED_MODEL: &str = "acme-internal-llm-v2";

/// Every model the demo uses; features refer to them by index.
#[rustfmt::skip]
pub const MODELS: [Model; 29] = [
    m("openai", "gpt-4o-2024-08-06", [2.5, 10.0, 1.25, 0.0], (380.0, 12.0), false, Automatic),
    m("openai", "gpt-4o-mini-2024-07-18", [0.15, 0.6, 0.075, 0.0], (260.0, 8.0), false, Automatic),
    m("openai", "gpt-4.1-2025-04-14", [2.0, 8.0, 0.5, 0.0], (360.0, 11.0), false, Automatic),
    m("openai", "gpt-4.1-mini-2025-04-14", [0.4, 1.6, 0.1, 0.0], (250.0, 8.0), false, Automatic),
    m("openai", "gpt-4.1-nano-2025-04-14", [0.1, 0.4, 0.025, 0.0], (180.0, 5.0), false, Automatic),
    m("openai", "o3-mini-2025-01-31", [1.1, 4.4, 0.55, 0.0], (1400.0, 10.0), true, Automatic),
    m("openai", "o4-mini-2025-04-16", [1.1, 4.4, 0.275, 0.0], (1500.0, 10.0), true, Automatic),
    m("openai", "gpt-5-2025-08-07", [1.25, 10.0, 0.125, 0.0], (2200.0, 14.0), true, Automatic),
    m("openai", "gpt-5-mini-2025-08-07", [0.25, 2.0, 0.025, 0.0], (900.0, 8.0), true, Automatic),
    m("openai", "text-embedding-3-small", [0.02, 0.0, 0.0, 0.0], (60.0, 0.0), false, NoCache),
    m("anthropic", "claude-3-5-sonnet-20241022", [3.0, 15.0, 0.3, 3.75], (650.0, 14.0), false, Explicit),
    m("anthropic", "claude-sonnet-4-5-20250929", [3.0, 15.0, 0.3, 3.75], (700.0, 14.0), false, Explicit),
    m("anthropic", "claude-3-5-haiku-20241022", [0.8, 4.0, 0.08, 1.0], (320.0, 7.0), false, Explicit),
    m("anthropic", "claude-opus-4-1-20250805", [15.0, 75.0, 1.5, 18.75], (950.0, 25.0), false, Explicit),
    m("anthropic", "claude-haiku-4-5-20251001", [1.0, 5.0, 0.1, 1.25], (300.0, 6.0), false, Explicit),
    m("aws_bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", [3.0, 15.0, 0.3, 3.75], (720.0, 15.0), false, Explicit),
    m("aws_bedrock", "us.anthropic.claude-3-5-haiku-20241022-v1:0", [0.8, 4.0, 0.08, 1.0], (340.0, 7.0), false, Explicit),
    m("aws_bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0", [3.0, 15.0, 0.3, 3.75], (740.0, 15.0), false, Explicit),
    m("aws_bedrock", "amazon.nova-pro-v1:0", [0.8, 3.2, 0.2, 0.0], (450.0, 10.0), false, Implicit),
    m("aws_bedrock", "amazon.nova-lite-v1:0", [0.06, 0.24, 0.015, 0.0], (240.0, 6.0), false, Implicit),
    m("aws_bedrock", "us.meta.llama3-3-70b-instruct-v1:0", [0.72, 0.72, 0.0, 0.0], (500.0, 12.0), false, NoCache),
    m("google_gemini", "gemini-1.5-pro-002", [1.25, 5.0, 0.3125, 0.0], (900.0, 10.0), false, Implicit),
    m("google_gemini", "gemini-2.0-flash", [0.1, 0.4, 0.025, 0.0], (300.0, 5.0), false, Implicit),
    m("google_gemini", "gemini-2.5-pro", [1.25, 10.0, 0.125, 0.0], (1800.0, 12.0), true, Implicit),
    m("google_gemini", "gemini-2.5-flash", [0.3, 2.5, 0.03, 0.0], (500.0, 5.0), true, Implicit),
    m("azure_openai", "gpt-4o-2024-11-20", [2.5, 10.0, 1.25, 0.0], (420.0, 13.0), false, Automatic),
    m("azure_openai", "gpt-4o-mini-2024-07-18", [0.165, 0.66, 0.083, 0.0], (280.0, 8.0), false, Automatic),
    m("azure_openai", "o3-mini-2025-01-31", [1.1, 4.4, 0.55, 0.0], (1400.0, 10.0), true, Automatic),
    m("azure_openai", UNPRICED_MODEL, [1.0, 3.0, 0.0, 0.0], (600.0, 12.0), false, NoCache),
];

/// Azure reports the model, not the deployment; the deployment name goes into `tags`.
pub fn azure_deployment(model: &str) -> &'static str {
    match model {
        "gpt-4o-2024-11-20" => "chat-prod-eastus2",
        "gpt-4o-mini-2024-07-18" => "chat-mini-prod-eastus2",
        "o3-mini-2025-01-31" => "reasoning-westeurope",
        _ => "acme-llm-v2-swedencentral",
    }
}

/// One team: the owner and cost center the demo's `finops.owners` rows carry.
#[derive(Debug, Clone, Copy)]
pub struct Team {
    /// Team name as it appears in `team`.
    pub name: &'static str,
    /// Owner e-mail.
    pub owner: &'static str,
    /// Finance cost center.
    pub cost_center: &'static str,
}

const fn t(name: &'static str, owner: &'static str, cost_center: &'static str) -> Team {
    Team {
        name,
        owner,
        cost_center,
    }
}

/// The twelve teams.
pub const TEAMS: [Team; 12] = [
    t("search", "maria.garcia@acme.example", "CC-1001"),
    t("support", "li.wei@acme.example", "CC-1002"),
    t("sales", "james.okafor@acme.example", "CC-1003"),
    t("marketing", "sofia.rossi@acme.example", "CC-1004"),
    t("data-science", "arjun.patel@acme.example", "CC-1005"),
    t("platform", "emma.schmidt@acme.example", "CC-1006"),
    t("growth", "noah.kim@acme.example", "CC-1007"),
    t("trust-safety", "fatima.haddad@acme.example", "CC-1008"),
    t("docs", "lucas.martin@acme.example", "CC-1009"),
    t("billing", "yuki.tanaka@acme.example", "CC-1010"),
    t("mobile", "olivia.brown@acme.example", "CC-1011"),
    t("legal", "david.cohen@acme.example", "CC-1012"),
];

/// One feature of one app of one team, and the traffic it sends.
#[derive(Debug, Clone, Copy)]
pub struct Feature {
    /// Index into [`TEAMS`].
    pub team: usize,
    /// App name.
    pub app: &'static str,
    /// Feature name.
    pub feature: &'static str,
    /// Models it calls, as (index into [`MODELS`], weight).
    pub models: &'static [(usize, f64)],
    /// Median input and output tokens per request.
    pub tokens: (f64, f64),
    /// Relative request volume.
    pub volume: f64,
    /// Requests carry an end-user id.
    pub per_user: bool,
    /// Sent through the Batch API at night.
    pub batch: bool,
}

// One positional argument per column keeps the feature table below readable as a table.
#[allow(clippy::too_many_arguments)]
const fn f(
    team: usize,
    app: &'static str,
    feature: &'static str,
    models: &'static [(usize, f64)],
    tokens: (f64, f64),
    volume: f64,
    per_user: bool,
    batch: bool,
) -> Feature {
    Feature {
        team,
        app,
        feature,
        models,
        tokens,
        volume,
        per_user,
        batch,
    }
}

/// Every feature. The `classify-intent`, `lead-score` and `yes-no-check` features are the
/// planted model misuse: tiny prompts and answers on frontier models.
#[rustfmt::skip]
pub const FEATURES: [Feature; 30] = [
    f(0, "search-api", "query-rewrite", &[(1, 0.7), (22, 0.3)], (300.0, 60.0), 10.0, true, false),
    f(0, "search-api", "answer-synthesis", &[(2, 0.6), (11, 0.4)], (12000.0, 400.0), 6.0, true, false),
    f(0, "search-indexer", "embed-docs", &[(9, 1.0)], (800.0, 0.0), 5.0, false, false),
    f(1, "support-bot", "chat", &[(11, 0.6), (12, 0.4)], (9000.0, 350.0), 9.0, true, false),
    f(1, "support-bot", "classify-intent", &[(0, 0.85), (1, 0.15)], (180.0, 6.0), 6.0, true, false),
    f(1, "ticket-triage", "summarize-ticket", &[(16, 0.7), (19, 0.3)], (1800.0, 200.0), 5.0, false, false),
    f(2, "sales-copilot", "draft-email", &[(0, 0.5), (10, 0.5)], (1500.0, 450.0), 4.0, true, false),
    f(2, "sales-copilot", "lead-score", &[(13, 1.0)], (220.0, 8.0), 1.5, false, false),
    f(2, "crm-sync", "extract-fields", &[(3, 1.0)], (1200.0, 150.0), 3.0, false, false),
    f(3, "content-studio", "generate-copy", &[(7, 0.5), (11, 0.5)], (900.0, 700.0), 3.0, true, false),
    f(3, "content-studio", "translate", &[(24, 0.6), (22, 0.4)], (700.0, 750.0), 3.0, true, false),
    f(4, "research-notebook", "analysis", &[(5, 0.4), (6, 0.3), (7, 0.3)], (8000.0, 1500.0), 2.0, true, false),
    f(4, "nightly-batch", "summarize-calls", &[(1, 1.0)], (6000.0, 500.0), 4.0, false, true),
    f(4, "eval-harness", "eval-judge", &[(23, 0.5), (2, 0.5)], (3000.0, 300.0), 2.0, false, false),
    f(5, "ai-gateway", "internal-assistant", &[(28, 1.0)], (1200.0, 300.0), 2.0, true, false),
    f(5, "ai-gateway", "guardrail-check", &[(4, 1.0)], (400.0, 10.0), 6.0, false, false),
    f(5, "code-review", "review-diff", &[(17, 0.6), (15, 0.4)], (30000.0, 800.0), 2.0, true, false),
    f(5, "code-review", "summarize-pr", &[(20, 0.5), (18, 0.5)], (5000.0, 250.0), 1.5, true, false),
    f(6, "onboarding-assistant", "chat", &[(25, 0.5), (26, 0.5)], (2000.0, 300.0), 5.0, true, false),
    f(6, "experiments", "personalize", &[(26, 1.0)], (600.0, 120.0), 4.0, true, false),
    f(6, "experiments", "yes-no-check", &[(25, 1.0)], (150.0, 3.0), 3.0, false, false),
    f(7, "moderation", "moderate", &[(1, 0.5), (19, 0.5)], (500.0, 20.0), 8.0, false, false),
    f(7, "fraud-review", "explain-flag", &[(14, 0.6), (6, 0.4)], (2200.0, 350.0), 2.0, false, false),
    f(8, "docs-site", "ask-docs", &[(21, 0.5), (24, 0.5)], (15000.0, 350.0), 4.0, true, false),
    f(8, "docs-site", "summarize-page", &[(22, 1.0)], (3000.0, 200.0), 2.0, false, true),
    f(9, "invoice-parser", "extract-line-items", &[(3, 0.6), (12, 0.4)], (3500.0, 600.0), 3.0, false, false),
    f(9, "collections", "draft-reminder", &[(27, 1.0)], (800.0, 900.0), 1.0, false, false),
    f(10, "mobile-app", "smart-reply", &[(22, 0.7), (24, 0.3)], (250.0, 40.0), 7.0, true, false),
    f(10, "mobile-app", "photo-caption", &[(8, 1.0)], (1200.0, 60.0), 2.0, true, false),
    f(11, "contract-review", "clause-extract", &[(13, 0.2), (11, 0.8)], (40000.0, 900.0), 1.0, true, false),
];

/// A planted spend spike: on `days_before` days before `as_of`, feature `feature` runs away
/// on model `model` (a retry loop resending a long context).
#[derive(Debug, Clone, Copy)]
pub struct Spike {
    /// Days before `as_of`.
    pub days_before: i64,
    /// Index into [`FEATURES`].
    pub feature: usize,
    /// Index into [`MODELS`].
    pub model: usize,
}

/// The 4 spikes (teams support, legal, data-science, sales), each 3-10x the team's usual day.
#[rustfmt::skip]
pub const SPIKES: [Spike; 4] = [
    // Support chat fails over to Bedrock, where its prompts are not cached.
    Spike { days_before: 61, feature: 3, model: 17 },
    Spike { days_before: 40, feature: 29, model: 13 },
    // A notebook loop pointed at Opus.
    Spike { days_before: 23, feature: 11, model: 13 },
    Spike { days_before: 9, feature: 6, model: 13 },
];

/// Per-provider account/project id for a team, as the provider's console shows it.
pub fn project_id(provider: &str, team: &str) -> String {
    let h = super::rng::hash_str(&format!("{provider}/{team}"));
    match provider {
        "openai" => format!("proj_{:016x}", h),
        "anthropic" => format!("wrkspc_{:012x}", h >> 16),
        // Bedrock attributes to the calling AWS account: 12 digits.
        "aws_bedrock" => format!("{:012}", h % 1_000_000_000_000),
        "google_gemini" => format!("acme-{team}-prod"),
        _ => format!("acme-{team}-aoai"),
    }
}

/// The project that predates team attribution: its rows carry no `team`, and an attribution
/// rule maps it to `growth`.
pub const LEGACY_PROJECT: &str = "proj_legacy_marketing_site";

/// A project nobody claimed: its spend stays unowned.
pub const ORPHAN_PROJECT: &str = "proj_hackathon_2025";
