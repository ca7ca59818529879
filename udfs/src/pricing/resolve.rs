//! Model-id normalisation: turns the ids providers report (dated ids, Bedrock profile ids,
//! ARNs, Vertex resource names, Azure meter names, gateway prefixes) into lookup candidates,
//! most specific first. Pure string work; the book decides which candidate matches.

/// Canonical provider name for the spellings seen in exports and gateways
/// (`bedrock` → `aws_bedrock`, `vertex_ai` → `gcp_vertex`, `azure` → `azure_openai`, ...).
pub fn canonical_provider(provider: &str) -> String {
    let lower = provider.trim().to_ascii_lowercase();
    let canonical = match lower.as_str() {
        "aws" | "bedrock" | "amazon_bedrock" | "aws-bedrock" | "bedrock_converse" => "aws_bedrock",
        "vertex" | "vertex_ai" | "vertexai" | "gcp" | "google_vertex" | "gcp.vertex_ai" => {
            "gcp_vertex"
        }
        "gemini" | "google" | "google_ai_studio" | "gcp.gemini" => "google_gemini",
        "azure" | "azure_ai" | "azure.ai.openai" | "azureopenai" => "azure_openai",
        "x-ai" | "x_ai" | "grok" => "xai",
        "mistralai" | "mistral_ai" => "mistral",
        "together" => "together_ai",
        "fireworks" => "fireworks_ai",
        "anthropic.claude" => "anthropic",
        _ => return lower,
    };
    canonical.to_string()
}

/// Providers whose list prices apply when a model is missing from the provider's own rows:
/// Azure OpenAI bills OpenAI models at OpenAI's global list price, and Vertex serves Gemini
/// and Claude at the prices of their makers.
pub(crate) fn fallback_providers(provider: &str) -> &'static [&'static str] {
    match provider {
        "azure_openai" => &["openai"],
        "gcp_vertex" => &["google_gemini", "anthropic"],
        "google_gemini" => &["gcp_vertex"],
        _ => &[],
    }
}

const GATEWAY_PREFIXES: &[&str] = &[
    "bedrock/",
    "vertex_ai/",
    "azure/",
    "openai/",
    "anthropic/",
    "gemini/",
    "google/",
    "xai/",
    "groq/",
    "mistral/",
    "deepseek/",
    "together_ai/",
    "fireworks_ai/",
    "models/",
];
const BEDROCK_REGIONS: &[&str] = &[
    "global.",
    "us.",
    "eu.",
    "apac.",
    "us-gov.",
    "jp.",
    "au.",
    "ca.",
    "regional.",
];
const BEDROCK_VENDORS: &[&str] = &[
    "anthropic.",
    "amazon.",
    "meta.",
    "mistral.",
    "cohere.",
    "ai21.",
    "deepseek.",
    "openai.",
    "qwen.",
    "writer.",
    "google.",
    "moonshotai.",
    "minimax.",
];
// Words of Azure meter names that describe the meter, not the model.
const AZURE_NOISE: &[&str] = &[
    "inp", "inpt", "input", "outp", "outpt", "output", "out", "cached", "cache", "cchd", "glbl",
    "gl", "global", "regnl", "regional", "rgnl", "dzone", "dz", "datazone", "tokens", "token",
    "1m", "1k", "batch", "btch", "priority", "prty", "flex", "in", "txt", "text", "aud", "audio",
];

/// Lookup candidates for `model` as reported by `provider` (already canonical), lowercased,
/// most specific first, without duplicates.
pub fn model_candidates(provider: &str, model: &str) -> Vec<String> {
    let mut out = Vec::new();
    for candidate in lookup_candidates(provider, model) {
        push(&mut out, exact_only(&candidate).1.to_string());
    }
    out
}

/// [`model_candidates`] with exact-only candidates marked by a leading `#`.
pub(crate) fn lookup_candidates(provider: &str, model: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let raw = model.trim().to_ascii_lowercase();
    if raw.is_empty() {
        return out;
    }
    push(&mut out, raw.clone());
    if raw.starts_with("arn:") {
        // An application inference profile or provisioned model names no model: only a
        // catalog rule for the ARN itself can price it.
        match arn_model(&raw) {
            Some(inner) => push(&mut out, inner),
            None => return out,
        }
    }
    // Ids wrapping another id (gateway prefixes, resource paths) match exact rules only, so
    // a pattern matches the inner id and `canonical_model` reports that.
    let mut wrappers: Vec<String> = Vec::new();
    if provider != "openrouter" {
        let snapshot = out.clone();
        for id in snapshot {
            for prefix in GATEWAY_PREFIXES {
                if let Some(rest) = id.strip_prefix(prefix) {
                    push(&mut out, rest.to_string());
                    wrappers.push(id.clone());
                }
            }
        }
    }
    let snapshot = out.clone();
    for id in snapshot {
        if let Some(pos) = id.rfind("/models/") {
            push(&mut out, id[pos + "/models/".len()..].to_string());
            wrappers.push(id.clone());
        }
    }
    if raw.contains(' ') {
        azure_meter_candidates(&raw, &mut out);
    }
    if let Some(base) = raw.strip_prefix("ft:") {
        // Fine-tuned ids fall back to their base model only after every fine-tune rule.
        let base = base.split(':').next().unwrap_or(base).to_string();
        push(&mut out, base);
    }
    // Each step keeps the earlier, more specific spellings ahead of the stripped ones.
    let steps: [fn(&str) -> Option<String>; 5] = [
        vertex_at_date,
        strip_region,
        strip_bedrock_version,
        strip_vendor,
        strip_date,
    ];
    for step in steps {
        let snapshot = out.clone();
        for id in snapshot {
            if let Some(next) = step(&id) {
                push(&mut out, next);
            }
        }
    }
    let snapshot = out.clone();
    for id in snapshot {
        if let Some(next) = strip_version_suffix(&id) {
            push(&mut out, next);
        }
    }
    for id in out.iter_mut() {
        if wrappers.contains(id) {
            id.insert(0, '#');
        }
    }
    out
}

/// Whether `candidate` may only match an exact catalog id (an ARN, an Azure meter name, or
/// an id with a guessed date), and the id to look up.
pub(crate) fn exact_only(candidate: &str) -> (bool, &str) {
    match candidate.strip_prefix('#') {
        Some(id) => (true, id),
        None => (
            candidate.starts_with("arn:") || candidate.contains(' '),
            candidate,
        ),
    }
}

fn push(out: &mut Vec<String>, id: String) {
    if !id.is_empty() && !out.contains(&id) {
        out.push(id);
    }
}

/// `arn:aws:bedrock:<region>:<account>:<type>/<id>` → the model id for foundation models
/// and system inference profiles; `None` for application profiles and provisioned models.
fn arn_model(arn: &str) -> Option<String> {
    let resource = arn.splitn(6, ':').nth(5)?;
    let (kind, id) = resource.split_once('/')?;
    match kind {
        "foundation-model" | "inference-profile" => Some(id.to_string()),
        _ => None,
    }
}

/// `claude-3-5-sonnet@20240620` → `claude-3-5-sonnet-20240620`.
fn vertex_at_date(id: &str) -> Option<String> {
    let (name, version) = id.split_once('@')?;
    if version.is_empty() || version == "latest" || version == "default" {
        return Some(name.to_string());
    }
    Some(format!("{name}-{version}"))
}

fn strip_region(id: &str) -> Option<String> {
    BEDROCK_REGIONS
        .iter()
        .find_map(|r| id.strip_prefix(r))
        .map(str::to_string)
}

fn strip_vendor(id: &str) -> Option<String> {
    BEDROCK_VENDORS
        .iter()
        .find_map(|v| id.strip_prefix(v))
        .map(str::to_string)
}

/// `...-v1:0` / `...-v2` / `...:0` Bedrock version suffixes.
fn strip_bedrock_version(id: &str) -> Option<String> {
    let (head, tail) = id.rsplit_once(':')?;
    if !tail.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(strip_version_suffix(head).unwrap_or_else(|| head.to_string()))
}

/// `-v2`, `-v1` at the end (OpenAI `text-embedding-ada-002-v2`, Bedrock `-v1`).
fn strip_version_suffix(id: &str) -> Option<String> {
    let (head, tail) = id.rsplit_once("-v")?;
    (!tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit())).then(|| head.to_string())
}

/// Date suffixes: `-2024-08-06`, `-20240620`, `@20240620`.
fn strip_date(id: &str) -> Option<String> {
    let bytes = id.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    let n = bytes.len();
    if n > 11 && bytes[n - 11] == b'-' && bytes[n - 6] == b'-' && bytes[n - 3] == b'-' {
        let tail = &bytes[n - 10..];
        if digits(&tail[..4]) && digits(&tail[5..7]) && digits(&tail[8..]) {
            return Some(id[..n - 11].to_string());
        }
    }
    if n > 9 && (bytes[n - 9] == b'-' || bytes[n - 9] == b'@') && digits(&bytes[n - 8..]) {
        return Some(id[..n - 9].to_string());
    }
    None
}

/// Azure meter names (`gpt-4o 0806 Inp glbl Tokens`, `GPT 5 Inpt Glbl 1M Tokens`,
/// `5.4 inp Gl 1M Tokens`) → `gpt-4o-2024-08-06`, `gpt-4o`, `gpt-5`, `gpt-5.4`. The meter
/// carries the version as MMDD only, so the year is tried from recent to old.
fn azure_meter_candidates(raw: &str, out: &mut Vec<String>) {
    let mut words: Vec<&str> = Vec::new();
    let mut version: Option<&str> = None;
    for word in raw.split_whitespace() {
        if AZURE_NOISE.contains(&word) {
            continue;
        }
        if !words.is_empty() && word.len() == 4 && word.bytes().all(|b| b.is_ascii_digit()) {
            version = Some(word);
            continue;
        }
        words.push(word);
    }
    let Some(first) = words.first() else {
        return;
    };
    let mut name = words.join("-");
    if first.starts_with(|c: char| c.is_ascii_digit()) {
        name = format!("gpt-{name}");
    }
    if let Some(mmdd) = version {
        for year in ["2026", "2025", "2024", "2023"] {
            // Guessed years must hit an exact id; `#` marks them (see `exact_only`).
            push(out, format!("#{name}-{year}-{}-{}", &mmdd[..2], &mmdd[2..]));
        }
        push(out, format!("{name}-{mmdd}"));
    }
    push(out, name);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_include_the_normalised_ids() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "aws_bedrock",
                "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
                "claude-3-5-sonnet-20240620",
            ),
            (
                "aws_bedrock",
                "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
                "anthropic.claude-3-5-sonnet-20240620-v1:0",
            ),
            (
                "aws_bedrock",
                "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0",
                "amazon.nova-lite-v1:0",
            ),
            (
                "gcp_vertex",
                "claude-3-5-sonnet@20240620",
                "claude-3-5-sonnet-20240620",
            ),
            (
                "gcp_vertex",
                "publishers/google/models/gemini-1.5-pro-002",
                "gemini-1.5-pro-002",
            ),
            (
                "azure_openai",
                "gpt-4o 0806 Inp glbl Tokens",
                "gpt-4o-2024-08-06",
            ),
            (
                "azure_openai",
                "gpt 4o 0806 cached Inp glbl Tokens",
                "gpt-4o-2024-08-06",
            ),
            ("azure_openai", "GPT 5 Inpt Glbl 1M Tokens", "gpt-5"),
            ("azure_openai", "5.4 inp Gl 1M Tokens", "gpt-5.4"),
            (
                "openai",
                "text-embedding-ada-002-v2",
                "text-embedding-ada-002",
            ),
            ("openai", "gpt-4o-2024-08-06", "gpt-4o"),
            (
                "openai",
                "ft:gpt-4o-mini-2024-07-18:acme::abc123",
                "gpt-4o-mini-2024-07-18",
            ),
            ("litellm", "openai/gpt-4o-2024-08-06", "gpt-4o-2024-08-06"),
        ];
        for (provider, model, expected) in cases {
            let got = model_candidates(provider, model);
            assert!(got.iter().any(|c| c == expected), "{model}: {got:?}");
        }
    }

    #[test]
    fn application_inference_profile_arn_yields_only_itself() {
        let arn =
            "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/synthprof0001";
        assert_eq!(model_candidates("aws_bedrock", arn), vec![arn.to_string()]);
    }

    #[test]
    fn openrouter_vendor_prefix_is_kept() {
        let got = model_candidates("openrouter", "openai/gpt-4o");
        assert_eq!(got.first().map(String::as_str), Some("openai/gpt-4o"));
        assert!(!got.iter().any(|c| c == "gpt-4o"), "{got:?}");
    }

    #[test]
    fn provider_spellings_are_canonical() {
        for (raw, expected) in [
            ("Bedrock", "aws_bedrock"),
            ("vertex_ai", "gcp_vertex"),
            ("azure", "azure_openai"),
            ("x-ai", "xai"),
            ("openai", "openai"),
        ] {
            assert_eq!(canonical_provider(raw), expected);
        }
    }
}
