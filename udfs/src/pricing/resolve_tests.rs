//! Resolution of the model ids found in the provider fixtures against the bundled book.

use super::PriceBook;

#[test]
fn fixture_ids_resolve_to_catalog_entries() {
    let book = PriceBook::bundled().expect("bundled book");
    // (provider, id as reported, expected catalog id)
    let cases = [
        ("openai", "gpt-4o-2024-08-06", "gpt-4o-2024-08-06"),
        ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini-2024-07-18"),
        ("openai", "o3-mini-2025-01-31", "o3-mini-2025-01-31"),
        (
            "openai",
            "text-embedding-ada-002-v2",
            "text-embedding-ada-002-v2",
        ),
        ("openai", "GPT-4o", "gpt-4o"),
        (
            "anthropic",
            "claude-3-5-sonnet-20240620",
            "claude-3-5-sonnet",
        ),
        (
            "anthropic",
            "claude-sonnet-4-20250514",
            "claude-sonnet-4-20250514",
        ),
        (
            "aws_bedrock",
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
        ),
        (
            "aws_bedrock",
            "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
        ),
        (
            "aws_bedrock",
            "amazon.nova-lite-v1:0",
            "amazon.nova-lite-v1:0",
        ),
        (
            "aws_bedrock",
            "meta.llama3-1-70b-instruct-v1:0",
            "meta.llama3-1-70b-instruct-v1:0",
        ),
        (
            "bedrock",
            "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0",
            "amazon.nova-lite-v1:0",
        ),
        (
            "gcp_vertex",
            "claude-3-5-sonnet@20240620",
            "claude-3-5-sonnet@20240620",
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
        (
            "azure_openai",
            "gpt-4o 0806 Batch Inp glbl Tokens",
            "gpt-4o-2024-08-06",
        ),
        (
            "azure_openai",
            "gpt-4o-mini 0718 Outp regnl Tokens",
            "gpt-4o-mini-2024-07-18",
        ),
        (
            "azure_openai",
            "o4-mini 0416 Inp glbl Tokens",
            "o4-mini-2025-04-16",
        ),
        (
            "azure_openai",
            "text-embedding-3-small Tokens",
            "text-embedding-3-small",
        ),
        ("openrouter", "openai/gpt-4o", "openai/gpt-4o"),
    ];
    for (provider, id, expected) in cases {
        let got = book.resolve(provider, id).map(|r| r.canonical.to_string());
        assert_eq!(got.as_deref(), Some(expected), "{provider} {id}");
    }
}

#[test]
fn vertex_and_gemini_resource_names_resolve() {
    let book = PriceBook::bundled().expect("bundled book");
    for (provider, id) in [
        ("gcp_vertex", "publishers/google/models/gemini-1.5-pro-002"),
        (
            "gcp_vertex",
            "projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash-001",
        ),
        ("google_gemini", "gemini-2.5-flash-preview-05-20"),
        ("google_gemini", "models/gemini-2.5-pro"),
        ("gcp_vertex", "claude-3-5-sonnet-v2@20241022"),
    ] {
        assert!(book.resolve(provider, id).is_some(), "{provider} {id}");
    }
}

#[test]
fn unknown_ids_and_application_profiles_are_unpriced() {
    let book = PriceBook::bundled().expect("bundled book");
    for (provider, id) in [
        (
            "aws_bedrock",
            "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/synthprof0001",
        ),
        ("openai", "totally-unknown-model"),
        ("no_such_provider", "gpt-4o"),
        ("openai", ""),
    ] {
        assert_eq!(book.resolve(provider, id), None, "{provider} {id}");
    }
}

#[test]
fn a_rule_can_price_an_application_profile_arn() {
    let arn = "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/synthprof0001";
    let mut rows = super::parse_catalog_csv(super::BUNDLED_CATALOG_CSV).expect("catalog");
    rows.push(super::PriceRow {
        provider: "aws_bedrock".into(),
        model: arn.into(),
        match_kind: Some(super::MatchKind::Exact),
        input: Some(3_000_000_000_000),
        output: Some(15_000_000_000_000),
        ..super::PriceRow::default()
    });
    let book = PriceBook::from_rows(rows).expect("book");
    assert_eq!(
        book.resolve("aws_bedrock", arn)
            .map(|r| r.canonical.to_string()),
        Some(arn.into())
    );
}

#[test]
fn exact_beats_prefix_beats_regex() {
    use super::{MatchKind, PriceRow};
    let rule = |model: &str, kind: MatchKind, input: i128| PriceRow {
        provider: "acme".into(),
        model: model.into(),
        match_kind: Some(kind),
        input: Some(input),
        output: Some(0),
        ..PriceRow::default()
    };
    let book = PriceBook::from_rows(vec![
        rule("m-.*", MatchKind::Regex, 1),
        rule("m-1", MatchKind::Prefix, 2),
        rule("m-1-large", MatchKind::Prefix, 3),
        rule("m-1-large-x", MatchKind::Exact, 4),
    ])
    .expect("book");
    let input_of = |id: &str| {
        let r = book.resolve("acme", id)?;
        book.row(book.row_index_at(r.entry, 0)?).input
    };
    assert_eq!(input_of("m-1-large-x"), Some(4));
    assert_eq!(input_of("m-1-large-y"), Some(3));
    assert_eq!(input_of("m-1-small"), Some(2));
    assert_eq!(input_of("m-2"), Some(1));
    assert_eq!(input_of("n-1"), None);
}
