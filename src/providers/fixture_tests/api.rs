//! Usage reports, per-request logs and telemetry: tokens as each provider defines them.

use super::*;

/// Usage API buckets: input includes cached (OpenAI convention, taken as is); results sharing a
/// bucket and grouping keys summed into one row; requests = `num_model_requests`.
#[test]
fn openai_usage_completions() {
    let p = parse("OPENAI_USAGE", "openai/usage_completions.json");
    // 67 results over 6 buckets (the last empty); the zero-token result with 3 requests shares
    // its grouping keys with another result of its bucket and is summed into it.
    assert_eq!(p.native.num_rows(), 67);
    assert_eq!(p.canonical.num_rows(), 66);
    check_totals(
        &p.canonical,
        &[
            (
                "openai",
                "gpt-4o-2024-08-06",
                [18, 66758669, 921053, 0, 18369823, 0, 40405],
                "0",
            ),
            (
                "openai",
                "gpt-4o-audio-preview-2024-12-17",
                [10, 7628835, 816017, 0, 2147305, 0, 3926],
                "0",
            ),
            (
                "openai",
                "gpt-4o-mini-2024-07-18",
                [18, 27817297, 1686102, 0, 8009058, 0, 18970],
                "0",
            ),
            (
                "openai",
                "o3-mini-2025-01-31",
                [20, 44615394, 1767144, 0, 10963272, 0, 35880],
                "0",
            ),
            (
                "*",
                "*",
                [66, 146820195, 5190316, 0, 39489458, 0, 99181],
                "0",
            ),
        ],
    );
    let c = &p.canonical;
    // `batch: true` → batch tier (32 results; identical grouping keys are not merged across tiers).
    let batch = rows_with(c, "service_tier", "batch").len();
    assert_eq!(batch, 32);
    // 2026 rows report `service_tier: "default"` → standard.
    assert!(!rows_with(c, "service_tier", "standard").is_empty());
    // Null project and key (default project, ungrouped) stay null.
    assert!(
        (0..c.num_rows())
            .any(|i| text(c, "project", i).is_none() && text(c, "api_key_id", i).is_none())
    );
    // Schema drift: the 2026 breakdown is null in early buckets and present in buckets 4-5.
    let cw = p
        .native
        .column_by_name("input_cache_write_tokens")
        .expect("column");
    assert_eq!(cw.len() - cw.null_count(), 27);
    // user_id is never grouped.
    assert!((0..c.num_rows()).all(|i| text(c, "user_id", i).is_none()));
}

/// Embeddings report input only (internal `-v2` model name kept); images report no tokens.
#[test]
fn openai_usage_embeddings_and_images() {
    let e = parse("OPENAI_USAGE", "openai/usage_embeddings.json");
    assert_eq!(e.native.num_rows(), 25);
    check_totals(
        &e.canonical,
        &[
            (
                "openai",
                "text-embedding-3-large",
                [8, 4393744, 0, 0, 0, 0, 13932],
                "0",
            ),
            (
                "openai",
                "text-embedding-3-small",
                [8, 2731432, 0, 0, 0, 0, 12956],
                "0",
            ),
            (
                "openai",
                "text-embedding-ada-002-v2",
                [9, 7903363, 0, 0, 0, 0, 19237],
                "0",
            ),
            ("*", "*", [25, 15028539, 0, 0, 0, 0, 46125], "0"),
        ],
    );
    let i = parse("OPENAI_USAGE", "openai/usage_images.json");
    assert_eq!(i.native.num_rows(), 32);
    check_totals(
        &i.canonical,
        &[
            ("openai", "dall-e-2", [5, 0, 0, 0, 0, 0, 64], "0"),
            ("openai", "dall-e-3", [13, 0, 0, 0, 0, 0, 404], "0"),
            ("openai", "gpt-image-1", [14, 0, 0, 0, 0, 0, 489], "0"),
            ("*", "*", [32, 0, 0, 0, 0, 0, 957], "0"),
        ],
    );
    let row = rows_with(&i.canonical, "model", "dall-e-3")[0];
    let tags = text(&i.canonical, "tags", row).expect("tags");
    assert!(
        tags.contains("\"images\":76") && tags.contains("\"size\":\"1024x1024\""),
        "{tags}"
    );
}

/// Per request: chat `prompt_tokens` / responses `input_tokens` include cached; reasoning is
/// inside completion/output; `cache_write_tokens` (2026) is a subset of input.
#[test]
fn openai_requests() {
    let p = parse("OPENAI_REQUESTS", "openai/request_usage.jsonl");
    assert_eq!(p.native.num_rows(), 32);
    // chatcmpl-synth0001 appears twice: both rows kept, one event_id.
    assert_eq!(p.canonical.num_rows(), 32);
    assert_eq!(distinct_ids(&p.canonical), 31);
    assert_eq!(
        rows_with(&p.canonical, "event_id", "chatcmpl-synth0001").len(),
        2
    );
    check_totals(
        &p.canonical,
        &[
            ("openai", "gpt-3.5-turbo-0125", [1, 57, 0, 0, 17, 0, 1], "0"),
            (
                "openai",
                "gpt-4.1-2025-04-14",
                [5, 96060, 30720, 4096, 4060, 0, 5],
                "0",
            ),
            (
                "openai",
                "gpt-4o-2024-08-06",
                [3, 16689, 15360, 0, 1762, 0, 3],
                "0",
            ),
            (
                "openai",
                "gpt-4o-mini-2024-07-18",
                [12, 170386, 22528, 0, 8692, 0, 12],
                "0",
            ),
            (
                "openai",
                "o3-mini-2025-01-31",
                [11, 161424, 104448, 0, 30340, 21554, 11],
                "0",
            ),
            ("*", "*", [32, 444616, 173056, 4096, 44871, 21554, 32], "0"),
        ],
    );
    let c = &p.canonical;
    let legacy = one_row(c, "event_id", "chatcmpl-synthLEGACY");
    assert_eq!(text(c, "service_tier", legacy), None);
    assert_eq!(int(c, "reasoning_tokens", legacy), None);
    let zero = one_row(c, "event_id", "chatcmpl-synthZERO");
    assert_eq!(int(c, "input_tokens", zero), Some(0));
    let cw = one_row(c, "event_id", "chatcmpl-synthCW");
    assert_eq!(int(c, "cache_write_tokens", cw), Some(4096));
    assert_eq!(int(c, "input_tokens", cw), Some(5000));
    let dup = rows_with(c, "event_id", "chatcmpl-synth0001");
    assert_eq!(text(c, "service_tier", dup[0]).as_deref(), Some("flex"));
    assert!(rows_with(c, "service_tier", "flex").len() >= 2);
}

/// Usage report: input = uncached + cache_read + 5m + 1h writes (disjoint buckets); cached =
/// cache_read; cache_write = 5m + 1h; no request counts.
#[test]
fn anthropic_usage() {
    let p = parse("ANTHROPIC_USAGE", "anthropic/usage_report.json");
    assert_eq!(p.native.num_rows(), 96);
    // The all-zero result shares its grouping keys with a real one and is summed into it.
    assert_eq!(p.canonical.num_rows(), 95);
    check_totals(
        &p.canonical,
        &[
            (
                "anthropic",
                "claude-3-5-haiku-20241022",
                [26, 147796142, 81606000, 13950100, 14492470, 0, 0],
                "0",
            ),
            (
                "anthropic",
                "claude-3-5-sonnet-20241022",
                [13, 61744529, 34614000, 7354850, 5235304, 0, 0],
                "0",
            ),
            (
                "anthropic",
                "claude-opus-4-1-20250805",
                [17, 44256109, 23191200, 4982100, 4344854, 0, 0],
                "0",
            ),
            (
                "anthropic",
                "claude-sonnet-4-20250514",
                [39, 206215311, 94140000, 31053650, 21277149, 0, 0],
                "0",
            ),
            (
                "*",
                "*",
                [95, 460012091, 233551200, 57340700, 45349777, 0, 0],
                "0",
            ),
        ],
    );
    let c = &p.canonical;
    assert!((0..c.num_rows()).all(|i| int(c, "requests", i).is_none()));
    // Batch rows never carry 1h writes, so their tags never mention them.
    for i in rows_with(c, "service_tier", "batch") {
        assert!(
            !text(c, "tags", i)
                .unwrap_or_default()
                .contains("cache_write_1h")
        );
    }
    assert!((0..c.num_rows()).any(|i| text(c, "tags", i).is_some_and(|t| t.contains("200k-1M"))));
    assert!((0..c.num_rows()).any(|i| text(c, "project", i).is_none()));
}

/// Messages: input = input_tokens (uncached) + cache_creation_input_tokens + cache_read; null
/// cache fields read as 0; no timestamp in the object, so the file time stands in.
#[test]
fn anthropic_messages() {
    let p = parse("ANTHROPIC_MESSAGES", "anthropic/messages_usage.jsonl");
    assert_eq!(p.canonical.num_rows(), 33);
    assert_eq!(distinct_ids(&p.canonical), 32);
    check_totals(
        &p.canonical,
        &[
            (
                "anthropic",
                "claude-3-5-haiku-20241022",
                [10, 68348, 9000, 43200, 11736, 0, 10],
                "0",
            ),
            (
                "anthropic",
                "claude-3-5-sonnet-20240620",
                [1, 812, 0, 0, 96, 0, 1],
                "0",
            ),
            (
                "anthropic",
                "claude-3-5-sonnet-20241022",
                [12, 158973, 93000, 40000, 18326, 0, 12],
                "0",
            ),
            (
                "anthropic",
                "claude-opus-4-1-20250805",
                [5, 103354, 66000, 27600, 6073, 0, 5],
                "0",
            ),
            (
                "anthropic",
                "claude-sonnet-4-20250514",
                [5, 102189, 72000, 17200, 8929, 0, 5],
                "0",
            ),
            ("*", "*", [33, 433676, 240000, 128000, 45160, 0, 33], "0"),
        ],
    );
    let c = &p.canonical;
    let legacy = one_row(c, "event_id", "msg_01SynthLegacyNoCacheObj0");
    assert_eq!(int(c, "input_tokens", legacy), Some(812));
    assert_eq!(int(c, "cached_input_tokens", legacy), Some(0));
    let refusal = one_row(c, "event_id", "msg_01SynthZeroOutput000000");
    assert!(text(c, "tags", refusal).is_some_and(|t| t.contains("refusal")));
    assert_eq!(ts(c, "ts", 0), Some(FILE_TIME));
}

/// Invocation logs: input = inputTokenCount (excludes cache) + cacheRead + cacheWrite; model ids
/// (version suffix, `us.` profile, profile ARN) kept as reported.
#[test]
fn bedrock_invocations() {
    let p = parse("BEDROCK_INVOCATIONS", "bedrock/invocation_logs.jsonl");
    assert_eq!(p.canonical.num_rows(), 40);
    // The last line repeats a requestId.
    assert_eq!(distinct_ids(&p.canonical), 39);
    assert_eq!(
        rows_with(
            &p.canonical,
            "event_id",
            "89b8a6a0-c8c0-417c-8814-db98eab7658c"
        )
        .len(),
        2
    );
    check_totals(
        &p.canonical,
        &[
            (
                "aws_bedrock",
                "amazon.nova-lite-v1:0",
                [10, 35063, 0, 0, 5610, 0, 10],
                "0",
            ),
            (
                "aws_bedrock",
                "amazon.titan-embed-text-v2:0",
                [1, 412, 0, 0, 0, 0, 1],
                "0",
            ),
            (
                "aws_bedrock",
                "anthropic.claude-3-5-sonnet-20240620-v1:0",
                [7, 84737, 56000, 9300, 6475, 0, 7],
                "0",
            ),
            (
                "aws_bedrock",
                "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/synthprof0001",
                [5, 49086, 32096, 3100, 4544, 0, 5],
                "0",
            ),
            (
                "aws_bedrock",
                "meta.llama3-1-70b-instruct-v1:0",
                [2, 6447, 0, 0, 608, 0, 2],
                "0",
            ),
            (
                "aws_bedrock",
                "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
                [8, 38262, 16048, 9300, 8025, 0, 8],
                "0",
            ),
            (
                "aws_bedrock",
                "us.anthropic.claude-sonnet-4-20250514-v1:0",
                [7, 389829, 32096, 159300, 12129, 0, 7],
                "0",
            ),
            ("*", "*", [40, 603836, 136240, 181000, 37391, 0, 40], "0"),
        ],
    );
    let c = &p.canonical;
    let throttled = one_row(c, "event_id", "5d9057fa-7a03-49ed-b0d9-a018546e3434");
    assert_eq!(text(c, "status", throttled).as_deref(), Some("error"));
    assert_eq!(rows_with(c, "status", "error").len(), 1);
    let big = one_row(c, "event_id", "e7001163-3aa3-4594-908c-04b4bd31e9d1");
    assert_eq!(int(c, "input_tokens", big), Some(180_233 + 150_000));
    let n = &p.native;
    assert_eq!(
        n.column_by_name("input_body_s3_path")
            .expect("col")
            .null_count(),
        39
    );
    // Cross-region profile: where it ran differs from where it was called.
    let xr = rows_with(c, "model", "us.anthropic.claude-3-5-sonnet-20240620-v1:0");
    assert!(xr.iter().any(|&i| {
        text(c, "tags", i).is_some_and(|t| t.contains("\"inference_region\":\"us-west-2\""))
    }));
    // Unicode request metadata becomes the team and stays in tags.
    assert!(!rows_with(c, "team", "財務チーム").is_empty());
    // Converse bodies give latency.
    assert!((0..c.num_rows()).any(|i| int(c, "latency_ms", i).is_some()));
    assert!(
        !rows_with(
            c,
            "user_id",
            "arn:aws:sts::111122223333:assumed-role/SynthSSORole/bob@example.com"
        )
        .is_empty()
    );
}

/// Gemini: input = promptTokenCount (includes cached) + toolUsePromptTokenCount; output =
/// candidates + thoughts; reasoning = thoughts; omitted counts are 0; `aiplatform` endpoint →
/// gcp_vertex, else google_gemini.
#[test]
fn gemini_usage() {
    let p = parse("GEMINI_USAGE", "gcp/gemini_usage_metadata.jsonl");
    assert_eq!(p.canonical.num_rows(), 30);
    assert_eq!(distinct_ids(&p.canonical), 29);
    check_totals(
        &p.canonical,
        &[
            (
                "gcp_vertex",
                "gemini-2.0-flash-001",
                [6, 434788, 121391, 0, 13814, 0, 6],
                "0",
            ),
            (
                "gcp_vertex",
                "gemini-2.5-flash",
                [1, 59934, 29811, 0, 9600, 6722, 1],
                "0",
            ),
            (
                "gcp_vertex",
                "gemini-2.5-flash-preview-05-20",
                [5, 410718, 70218, 0, 24315, 13122, 5],
                "0",
            ),
            (
                "gcp_vertex",
                "gemini-2.5-pro",
                [2, 126268, 12045, 0, 13699, 9392, 2],
                "0",
            ),
            (
                "google_gemini",
                "gemini-2.0-flash-001",
                [8, 534903, 0, 0, 13844, 0, 8],
                "0",
            ),
            (
                "google_gemini",
                "gemini-2.5-flash",
                [5, 216323, 20582, 0, 27847, 19186, 5],
                "0",
            ),
            (
                "google_gemini",
                "gemini-2.5-flash-preview-05-20",
                [2, 40734, 0, 0, 14080, 9825, 2],
                "0",
            ),
            (
                "google_gemini",
                "gemini-2.5-pro",
                [1, 105314, 0, 0, 7490, 5349, 1],
                "0",
            ),
            ("*", "*", [30, 1928982, 254047, 0, 124689, 63596, 30], "0"),
        ],
    );
    let c = &p.canonical;
    let blocked = one_row(c, "event_id", "synthRespBLOCKED");
    assert_eq!(text(c, "status", blocked).as_deref(), Some("error"));
    assert_eq!(int(c, "output_tokens", blocked), Some(0));
    assert_eq!(int(c, "input_tokens", blocked), Some(41));
    // Gemini API responses carry no createTime: 16 rows take the file time.
    assert_eq!(
        (0..c.num_rows())
            .filter(|&i| ts(c, "ts", i) == Some(FILE_TIME))
            .count(),
        16
    );
    assert!(p.native.num_rows() == 30);
}

/// OTel spans: `gen_ai.usage.input_tokens` (or legacy `prompt_tokens`) includes cache read and
/// creation (subsets); reasoning ⊂ output; spans of inference operations or carrying usage count
/// (the orchestrating span has usage, its tool child does not); provider names mapped; response model
/// preferred to request model.
#[test]
fn otel_genai() {
    let p = parse("OTEL_GENAI", "otel/genai_spans.jsonl");
    assert_eq!(p.native.num_rows(), 41);
    assert_eq!(p.canonical.num_rows(), 40);
    assert_eq!(distinct_ids(&p.canonical), 39);
    check_totals(
        &p.canonical,
        &[
            (
                "anthropic",
                "claude-sonnet-4-20250514",
                [7, 110403, 18733, 6886, 7924, 0, 7],
                "0",
            ),
            (
                "aws_bedrock",
                "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
                [6, 145584, 55925, 18345, 7717, 0, 6],
                "0",
            ),
            (
                "azure_openai",
                "gpt-4o-2024-08-06",
                [3, 107313, 0, 0, 7661, 0, 3],
                "0",
            ),
            (
                "gcp_vertex",
                "gemini-2.5-flash",
                [1, 18493, 0, 0, 2137, 597, 1],
                "0",
            ),
            (
                "google_gemini",
                "gemini-2.5-pro",
                [8, 173017, 0, 0, 7452, 3389, 8],
                "0",
            ),
            (
                "openai",
                "gpt-4o-2024-08-06",
                [3, 24033, 22528, 0, 4293, 0, 3],
                "0",
            ),
            ("openai", "gpt-4o-mini", [2, 9100, 0, 0, 640, 0, 2], "0"),
            (
                "openai",
                "gpt-4o-mini-2024-07-18",
                [9, 216481, 180224, 0, 15034, 0, 9],
                "0",
            ),
            (
                "openai",
                "text-embedding-3-small",
                [1, 5120, 0, 0, 0, 0, 1],
                "0",
            ),
            ("*", "*", [40, 809544, 277410, 25231, 52858, 3986, 40], "0"),
        ],
    );
    let c = &p.canonical;
    assert_eq!(rows_with(c, "status", "error").len(), 1);
    assert!(!rows_with(c, "team", "検索チーム").is_empty());
    assert!(!rows_with(c, "app", "checkout-assistant").is_empty());
    assert!(!rows_with(c, "environment", "staging").is_empty());
    let n = &p.native;
    assert_eq!(rows_with(n, "operation_name", "execute_tool").len(), 1);
    assert_eq!(rows_with(n, "system", "openai").len(), 1);
}

/// LiteLLM: prompt tokens include cached (OpenAI shape); cached from
/// `metadata.additional_usage_values.prompt_tokens_details.cached_tokens`; spend is the reported
/// cost; proxy cache hits used no provider tokens (0); the MCP tool call with no spend is not
/// model usage; route prefixes (`bedrock/`, `azure/`) dropped from the model.
#[test]
fn litellm_spend() {
    let p = parse("LITELLM_SPEND", "litellm/spend_logs.csv");
    assert_eq!(p.native.num_rows(), 43);
    assert_eq!(p.canonical.num_rows(), 42);
    assert_eq!(distinct_ids(&p.canonical), 41);
    check_totals(
        &p.canonical,
        &[
            (
                "anthropic",
                "claude-sonnet-4-20250514",
                [10, 83128, 23439, 0, 9161, 0, 10],
                "0.3235137",
            ),
            (
                "aws_bedrock",
                "anthropic.claude-3-5-sonnet-20240620-v1:0",
                [4, 37208, 5862, 0, 1447, 0, 4],
                "0.1175016",
            ),
            (
                "azure_openai",
                "gpt-4o-2024-08-06",
                [3, 41767, 0, 0, 4477, 0, 3],
                "0.1491875",
            ),
            (
                "gcp_vertex",
                "gemini-2.5-flash",
                [7, 70547, 13323, 0, 5386, 0, 7],
                "0.03103189",
            ),
            (
                "openai",
                "gpt-4o-2024-08-06",
                [10, 106018, 19720, 0, 7848, 0, 10],
                "0.29915500",
            ),
            (
                "openai",
                "text-embedding-3-small",
                [8, 66062, 0, 0, 0, 0, 8],
                "0.00132124",
            ),
            ("*", "*", [42, 404730, 62344, 0, 28319, 0, 42], "0.92171093"),
        ],
    );
    let c = &p.canonical;
    assert_eq!(rows_with(c, "status", "error").len(), 1);
    let hits: Vec<usize> = (0..c.num_rows())
        .filter(|&i| text(c, "tags", i).is_some_and(|t| t.contains("cache_hit")))
        .collect();
    assert_eq!(hits.len(), 4);
    assert!(hits.iter().all(|&i| int(c, "input_tokens", i) == Some(0)));
    // Unicode request tags are kept.
    assert!((0..c.num_rows()).any(|i| text(c, "tags", i).is_some_and(|t| t.contains("サポート"))));
    // Empty-string user is no user.
    assert!((0..c.num_rows()).all(|i| text(c, "user_id", i).as_deref() != Some("")));
}

/// Token usage histogram (DELTA points): `sum` of an `input` point is input tokens, of an
/// `output` point output tokens; requests = `count` of input points.
#[test]
fn otel_genai_metrics() {
    let p = parse("OTEL_GENAI", "otel/genai_token_usage_metrics.jsonl");
    assert_eq!(p.native.num_rows(), 20);
    check_totals(
        &p.canonical,
        &[
            (
                "anthropic",
                "claude-sonnet-4-20250514",
                [1, 572658, 0, 0, 0, 0, 22],
                "0",
            ),
            (
                "aws_bedrock",
                "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
                [2, 485363, 0, 0, 0, 0, 15],
                "0",
            ),
            (
                "azure_openai",
                "gpt-4o-2024-08-06",
                [3, 744229, 0, 0, 999018, 0, 26],
                "0",
            ),
            (
                "gcp_vertex",
                "gemini-2.5-flash",
                [3, 908658, 0, 0, 679797, 0, 36],
                "0",
            ),
            (
                "google_gemini",
                "gemini-2.5-pro",
                [4, 936792, 0, 0, 1331233, 0, 38],
                "0",
            ),
            (
                "openai",
                "gpt-4o-2024-08-06",
                [3, 460732, 0, 0, 448887, 0, 16],
                "0",
            ),
            (
                "openai",
                "gpt-4o-mini-2024-07-18",
                [4, 1214665, 0, 0, 628787, 0, 59],
                "0",
            ),
            ("*", "*", [20, 5323097, 0, 0, 4087722, 0, 212], "0"),
        ],
    );
    assert_eq!(rows_with(&p.native, "token_type", "output").len(), 10);
}
