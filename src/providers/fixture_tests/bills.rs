//! Bills and cost reports: exact reported cost, token quantities in billing units, roll-ups.

use super::*;

/// Costs: cost = Σ `amount.value` exactly; `line_item` "<model>, <kind>" gives the model, and the
/// 2026 `quantity` in tokens feeds input (cached input also feeds cached); the all-null row is
/// kept as model `unknown`; results sharing bucket and dimensions are summed (the 0.0 rows).
#[test]
fn openai_costs() {
    let p = parse("OPENAI_COSTS", "openai/costs.json");
    assert_eq!(p.native.num_rows(), 98);
    check_totals(
        &p.canonical,
        &[
            (
                "openai",
                "gpt-4o-2024-08-06",
                [24, 70638918, 3115597, 0, 12778284, 0, 0],
                "623.87779250",
            ),
            (
                "openai",
                "gpt-4o-mini-2024-07-18",
                [36, 80443407, 22731283, 0, 16204531, 0, 0],
                "68.081362425",
            ),
            (
                "openai",
                "o3-mini-2025-01-31",
                [31, 57439136, 19173022, 0, 16416315, 0, 0],
                "348.68763655",
            ),
            ("openai", "unknown", [5, 0, 0, 0, 0, 0, 0], "61.7283945"),
            (
                "*",
                "*",
                [96, 208521461, 45019902, 0, 45399130, 0, 0],
                "1102.375185975",
            ),
        ],
    );
    // Nine decimal places survive exactly.
    let n = &p.native;
    assert!((0..n.num_rows()).any(|i| money(n, "amount_value", i) == Some(131_013_075_000)));
}

/// Cost report: `amount` is cents as a decimal string → dollars = amount / 100, exactly; web
/// search and code execution rows have no model (`unknown`).
#[test]
fn anthropic_costs() {
    let p = parse("ANTHROPIC_COSTS", "anthropic/cost_report.json");
    assert_eq!(p.native.num_rows(), 145);
    check_totals(
        &p.canonical,
        &[
            (
                "anthropic",
                "claude-3-5-haiku-20241022",
                [36, 0, 0, 0, 0, 0, 0],
                "971.05464604",
            ),
            (
                "anthropic",
                "claude-3-5-sonnet-20241022",
                [31, 0, 0, 0, 0, 0, 0],
                "2164.93599537",
            ),
            (
                "anthropic",
                "claude-opus-4-1-20250805",
                [38, 0, 0, 0, 0, 0, 0],
                "16956.65240661",
            ),
            (
                "anthropic",
                "claude-sonnet-4-20250514",
                [33, 0, 0, 0, 0, 0, 0],
                "2667.07858057",
            ),
            ("anthropic", "unknown", [7, 0, 0, 0, 0, 0, 0], "60.375"),
            ("*", "*", [145, 0, 0, 0, 0, 0, 0], "22820.09662859"),
        ],
    );
    // "1161.077216" cents is $11.61077216.
    let n = &p.native;
    assert_eq!(money(n, "amount", 0), Some(dollars("11.61077216")));
    assert_eq!(money(n, "amount_cents", 0), Some(dollars("1161.077216")));
}

/// CUR: Usage lines' `line_item_usage_amount` is in 1K tokens (×1000), per usage type
/// (input / output / cache-read / cache-write, cache types are subsets of input); cost =
/// Σ unblended cost; the re-delivered line id counted once; rolled up per (line type, account,
/// period, billing model, tier, region, cross-region, principal, resource tags). Credit and Tax
/// keep cost without tokens.
#[test]
fn aws_cur() {
    let p = parse("AWS_CUR", "aws/cur2_bedrock.csv");
    assert_eq!(p.native.num_rows(), 76);
    check_totals(
        &p.canonical,
        &[
            (
                "aws_bedrock",
                "Claude3.5Sonnet",
                [22, 98036664, 30640147, 39338166, 15982552, 0, 0],
                "455.62349960",
            ),
            (
                "aws_bedrock",
                "Claude4Sonnet",
                [18, 59312821, 30656111, 0, 32991186, 0, 0],
                "590.0347533",
            ),
            (
                "aws_bedrock",
                "Llama3.1-70B",
                [12, 24462284, 0, 0, 25537431, 0, 0],
                "17.99989740",
            ),
            (
                "aws_bedrock",
                "Nova2.0Lite",
                [11, 29785837, 0, 0, 31046217, 0, 0],
                "4.61912115",
            ),
            (
                "aws_bedrock",
                "TitanEmbeddingsV2-Text",
                [6, 21688654, 0, 0, 0, 0, 0],
                "0.43377308",
            ),
            ("aws_bedrock", "unknown", [1, 0, 0, 0, 0, 0, 0], "3.41"),
            (
                "*",
                "*",
                [70, 233286260, 61296258, 39338166, 105557386, 0, 0],
                "1072.12104453",
            ),
        ],
    );
    let c = &p.canonical;
    let credit: Vec<usize> = (0..c.num_rows())
        .filter(|&i| {
            text(c, "tags", i).is_some_and(|t| t.contains("\"line_item_type\":\"Credit\""))
        })
        .collect();
    assert_eq!(credit.len(), 1);
    assert_eq!(money(c, "reported_cost", credit[0]), Some(dollars("-25")));
    assert_eq!(int(c, "input_tokens", credit[0]), None);
    assert!(!rows_with(c, "service_tier", "batch").is_empty());
    assert!(!rows_with(c, "service_tier", "flex").is_empty());
    assert!(!rows_with(c, "team", "データ基盤").is_empty());
    // The open period has no invoice id.
    assert_eq!(
        p.native
            .column_by_name("bill_invoice_id")
            .expect("col")
            .null_count(),
        76
    );
}

/// GCP billing: token SKUs count one token per `usage.amount` unit; cost = `cost` + Σ credits
/// (FREE_TIER, PROMOTION are negative); identical lines once; rolled up per (service, model from
/// the SKU, cost type, hour, project, location, labels). Tax and adjustment rows keep cost only.
#[test]
fn gcp_billing() {
    let p = parse("GCP_BILLING", "gcp/billing_export.jsonl");
    assert_eq!(p.native.num_rows(), 67);
    check_totals(
        &p.canonical,
        &[
            (
                "gcp_vertex",
                "claude-sonnet-4",
                [7, 433677454, 0, 0, 0, 0, 0],
                "1103.073018",
            ),
            (
                "gcp_vertex",
                "gemini-2.5-flash",
                [20, 793642647, 331093057, 0, 275053956, 0, 0],
                "846.731747",
            ),
            (
                "gcp_vertex",
                "gemini-2.5-pro",
                [15, 373670262, 0, 0, 332821663, 0, 0],
                "3795.304458",
            ),
            ("gcp_vertex", "unknown", [1, 0, 0, 0, 0, 0, 0], "1.23"),
            (
                "google_gemini",
                "gemini-2.0-flash",
                [13, 380566850, 0, 0, 300944814, 0, 0],
                "127.331292",
            ),
            (
                "*",
                "*",
                [56, 1981557213, 331093057, 0, 908820433, 0, 0],
                "5873.670515",
            ),
        ],
    );
    let c = &p.canonical;
    assert!(!rows_with(c, "team", "équipe-ü").is_empty());
    let tax = rows_with(c, "model", "unknown");
    assert_eq!(text(c, "project", tax[0]), None);
    assert!(
        (0..c.num_rows()).any(|i| text(c, "tags", i).is_some_and(|t| t.contains("adjustment")))
    );
}

/// Azure: `1K` meters → Quantity × 1000 tokens for Usage rows; cached meters are input and
/// cached; cost = Σ CostInBillingCurrency; the exact duplicate line once; Refund and the PTU
/// reservation hour keep cost only; rolled up per (charge type, day, subscription, resource,
/// model from the meter, tier, deployment scope, pricing model, cost center, tags).
#[test]
fn azure_costs() {
    let p = parse("AZURE_COSTS", "azure/cost_export.csv");
    assert_eq!(p.native.num_rows(), 49);
    check_totals(
        &p.canonical,
        &[
            (
                "azure_openai",
                "Provisioned Managed Global Unit",
                [1, 0, 0, 0, 0, 0, 0],
                "0",
            ),
            (
                "azure_openai",
                "gpt-4o 0806",
                [13, 179786963, 70346430, 0, 82758856, 0, 0],
                "1113.66862395",
            ),
            (
                "azure_openai",
                "gpt-4o-mini 0718",
                [9, 50389796, 0, 0, 93144093, 0, 0],
                "69.71021760",
            ),
            (
                "azure_openai",
                "o4-mini 0416",
                [6, 64027516, 0, 0, 75678114, 0, 0],
                "403.41397041",
            ),
            (
                "azure_openai",
                "text-embedding-3-small",
                [4, 64415915, 0, 0, 0, 0, 0],
                "1.28831831",
            ),
            (
                "*",
                "*",
                [33, 358620190, 70346430, 0, 251581063, 0, 0],
                "1588.08113027",
            ),
        ],
    );
    let c = &p.canonical;
    assert!(!rows_with(c, "team", "プラットフォーム").is_empty());
    assert!(!rows_with(c, "service_tier", "batch").is_empty());
    let refund: Vec<usize> = (0..c.num_rows())
        .filter(|&i| text(c, "tags", i).is_some_and(|t| t.contains("Refund")))
        .collect();
    assert_eq!(refund.len(), 1);
    assert!(money(c, "reported_cost", refund[0]).is_some_and(|v| v < 0));
    assert_eq!(int(c, "output_tokens", refund[0]), None);
}

/// FOCUS: Usage rows in `Tokens` give ConsumedQuantity tokens by `x_TokenType` (cached_input is
/// input and cached); cost = EffectiveCost (amortized); corrections, credits, tax and purchases
/// keep cost only; identical rows once; rolled up per model, charge period and attribution.
#[test]
fn focus() {
    let p = parse("FOCUS", "focus/focus_ai.csv");
    assert_eq!(p.native.num_rows(), 46);
    check_totals(
        &p.canonical,
        &[
            (
                "anthropic",
                "claude-sonnet-4-20250514",
                [9, 249198975, 99987119, 0, 60666299, 0, 0],
                "1387.6261887",
            ),
            (
                "aws_bedrock",
                "anthropic.claude-3-5-sonnet-20240620-v1:0",
                [6, 149434166, 45774071, 0, 37839132, 0, 0],
                "847.684511985",
            ),
            (
                "azure_openai",
                "gpt-4o-2024-08-06",
                [7, 188368131, 62392399, 0, 127387124, 0, 0],
                "1467.967802775",
            ),
            (
                "gcp_vertex",
                "gemini-2.5-flash",
                [5, 129539795, 24252677, 0, 152069103, 0, 0],
                "412.48647321",
            ),
            (
                "openai",
                "gpt-4o-2024-08-06",
                [11, 123802296, 16629723, 0, 82992962, 0, 0],
                "1054.95398325",
            ),
            (
                "*",
                "*",
                [38, 840343363, 249035989, 0, 460954620, 0, 0],
                "5170.718959920",
            ),
        ],
    );
    let c = &p.canonical;
    assert!(!rows_with(c, "provider", "azure_openai").is_empty());
    // Committed usage carries its amortized cost; the purchase row is 0 effective.
    let purchase: Vec<usize> = (0..c.num_rows())
        .filter(|&i| text(c, "tags", i).is_some_and(|t| t.contains("Purchase")))
        .collect();
    assert_eq!(money(c, "reported_cost", purchase[0]), Some(0));
    assert!(!rows_with(c, "team", "search").is_empty());
    // The correction row is dated in its own (earlier) period.
    assert!((0..c.num_rows()).any(|i| ts(c, "ts", i) == Some(1_756_512_000_000_000)));
}

/// MCA exports name the same columns in camelCase; headers are matched case-insensitively.
#[test]
fn azure_mca_camel_case_headers_read_the_same() {
    let ea = String::from_utf8(fixture("azure/cost_export.csv")).expect("utf8");
    let (header, rows) = ea.split_once('\n').expect("header");
    let camel: Vec<String> = header
        .split(',')
        .map(|h| {
            let mut c = h.chars();
            c.next()
                .map(|f| f.to_lowercase().chain(c).collect())
                .unwrap_or_default()
        })
        .collect();
    let mca = format!("{}\n{rows}", camel.join(","));
    let ctx = FileContext {
        file: "mca.csv",
        modified: None,
    };
    let p = parse_file("AZURE_COSTS", &ctx, mca.as_bytes(), OnError::Fail).expect("parse");
    let ea = parse("AZURE_COSTS", "azure/cost_export.csv");
    assert!(camel.iter().any(|h| h == "costInBillingCurrency"));
    assert_eq!(p.canonical.num_rows(), ea.canonical.num_rows());
    assert_eq!(
        p.canonical.column_by_name("reported_cost"),
        ea.canonical.column_by_name("reported_cost")
    );
}
