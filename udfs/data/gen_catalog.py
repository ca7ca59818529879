#!/usr/bin/env python3
"""Generate the bundled price catalog `udfs/data/catalog.csv`.

Inputs (upstream copies, provenance in `udfs/data/NOTICE.md`):
  * genai_prices.json  (pydantic/genai-prices): dated prices, long-context tiers, match rules.
  * model_prices.json  (BerriAI/litellm): widest coverage; cache, batch, priority, flex prices.

Re-run from the repository root (Python 3.11+, standard library only):

    python3 udfs/data/gen_catalog.py \
        --genai /path/to/genai_prices.json \
        --litellm /path/to/model_prices.json \
        --out udfs/data/catalog.csv

then run `cargo test -p finops-udfs` (the golden tests pin a few well-known prices, so a price
change upstream shows up as a failing test to review, not as a silent change).

Output: one row per (provider, model, match kind, valid_from, valid_to); prices in USD per
million tokens as exact decimal strings. Rules applied, in order:
  1. genai-prices rules are flattened: `or` alternatives become one row each; `equals` is an
     `exact` row, `starts_with` a `prefix` row, `contains`/`ends_with`/`regex` a `regex` row;
     `and` rules are skipped (no single-row equivalent). A price list with `start_date`
     constraints becomes consecutive validity ranges (`valid_to` = next `start_date`, exclusive).
     Time-of-day price lists keep the constrained (standard-hours) prices for all hours.
  2. Every litellm chat/completion/responses/embedding entry of a kept provider becomes an `exact`
     row. If a genai-prices rule of the same provider matches that id, the row copies the
     genai-prices validity ranges (so dated prices survive) and litellm only fills the columns
     genai-prices lacks (batch, priority, flex, 1-hour cache writes, tiers) on the current range,
     and only when both sources agree on the current input and output price.
  3. The first source to price a (provider, model, match) owns all its ranges.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import sys
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

COLUMNS = [
    "provider", "model", "match", "valid_from", "valid_to",
    "input", "output", "cache_read", "cache_write", "cache_write_1h",
    "batch_input", "batch_output", "priority_input", "priority_output", "flex_input", "flex_output",
    "tier_threshold_tokens", "tier_input", "tier_output", "tier_cache_read", "tier_cache_write",
    "tier", "source",
]
PRICE_COLUMNS = COLUMNS[5:21]

# genai-prices provider id -> canonical provider names (Google prices serve both Google APIs).
GENAI_PROVIDERS = {
    "openai": ["openai"],
    "anthropic": ["anthropic"],
    "aws": ["aws_bedrock"],
    "google": ["google_gemini", "gcp_vertex"],
    "azure": ["azure_openai"],
    "openrouter": ["openrouter"],
    "mistral": ["mistral"],
    "groq": ["groq"],
    "deepseek": ["deepseek"],
    "x-ai": ["xai"],
    "cohere": ["cohere"],
    "together": ["together_ai"],
    "fireworks": ["fireworks_ai"],
    "perplexity": ["perplexity"],
}

# litellm `litellm_provider` -> canonical provider name.
LITELLM_PROVIDERS = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "anthropic": "anthropic",
    "bedrock": "aws_bedrock",
    "bedrock_converse": "aws_bedrock",
    "vertex_ai-language-models": "gcp_vertex",
    "vertex_ai-anthropic_models": "gcp_vertex",
    "vertex_ai-mistral_models": "gcp_vertex",
    "vertex_ai-llama_models": "gcp_vertex",
    "vertex_ai-embedding-models": "gcp_vertex",
    "vertex_ai-text-models": "gcp_vertex",
    "vertex_ai-chat-models": "gcp_vertex",
    "gemini": "google_gemini",
    "azure": "azure_openai",
    "openrouter": "openrouter",
    "mistral": "mistral",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "xai",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "together_ai": "together_ai",
    "fireworks_ai": "fireworks_ai",
    "perplexity": "perplexity",
}
LITELLM_MODES = {"chat", "completion", "responses", "embedding"}
# litellm key prefixes that only name the provider; other slashes are part of the model id.
LITELLM_KEY_PREFIXES = (
    "azure/", "gemini/", "vertex_ai/", "xai/", "groq/", "mistral/", "deepseek/", "openrouter/",
    "bedrock/", "anthropic/", "openai/", "cohere/", "together_ai/", "fireworks_ai/", "perplexity/",
)
# Tier suffixes in litellm field names, lowest threshold first.
LITELLM_TIERS = [128_000, 200_000, 256_000, 272_000, 512_000]


def dec(value) -> str:
    """Exact decimal text of a JSON number (no float noise, no exponent)."""
    if value is None:
        return ""
    d = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if d.as_tuple().exponent < -12:
        # Prices are stored at scale 12 (Decimal128(38, 12)); longer fractions are upstream
        # float artefacts of thirds and twelfths (0.08333333333333334), rounded half-even.
        d = d.quantize(Decimal(1).scaleb(-12), rounding=ROUND_HALF_EVEN)
    return format(d.normalize(), "f")


def per_million(value) -> str:
    if value is None or isinstance(value, (dict, list)) or isinstance(value, bool):
        return ""
    return dec(Decimal(repr(value)) * 10**6 if isinstance(value, float) else Decimal(value) * 10**6)


def escape(text: str) -> str:
    """Regex-escape only real metacharacters, so catalog patterns stay readable."""
    return "".join("\\" + ch if ch in ".^$|?*+()[]{}\\" else ch for ch in text)


def flatten_match(rule) -> list[tuple[str, str]]:
    """genai-prices match rule -> [(match kind, pattern)]; `and` is not representable."""
    if "or" in rule:
        out: list[tuple[str, str]] = []
        for alt in rule["or"]:
            out.extend(flatten_match(alt))
        return out
    if "equals" in rule:
        return [("exact", rule["equals"])]
    if "starts_with" in rule:
        return [("prefix", rule["starts_with"])]
    if "contains" in rule:
        return [("regex", escape(rule["contains"]))]
    if "ends_with" in rule:
        return [("regex", escape(rule["ends_with"]) + "$")]
    if "regex" in rule:
        return [("regex", rule["regex"])]
    return []


def rule_matches(rule, model: str) -> bool:
    if "or" in rule:
        return any(rule_matches(r, model) for r in rule["or"])
    if "and" in rule:
        return all(rule_matches(r, model) for r in rule["and"])
    if "equals" in rule:
        return model == rule["equals"]
    if "starts_with" in rule:
        return model.startswith(rule["starts_with"])
    if "contains" in rule:
        return rule["contains"] in model
    if "ends_with" in rule:
        return model.endswith(rule["ends_with"])
    if "regex" in rule:
        return re.search(rule["regex"], model) is not None
    return False


def genai_price_set(prices: dict) -> dict:
    """genai-prices price object (USD/Mtok, maybe tiered) -> catalog price columns."""
    row = {c: "" for c in PRICE_COLUMNS}
    fields = {
        "input_mtok": ("input", "tier_input"),
        "output_mtok": ("output", "tier_output"),
        "cache_read_mtok": ("cache_read", "tier_cache_read"),
        "cache_write_mtok": ("cache_write", "tier_cache_write"),
        "cache_write_1h_mtok": ("cache_write_1h", None),
    }
    for key, (col, tier_col) in fields.items():
        value = prices.get(key)
        if value is None:
            continue
        if isinstance(value, dict):
            row[col] = dec(value["base"])
            tiers = value.get("tiers") or []
            # One long-context tier is modelled; the first tier is the only one upstream uses.
            if tiers and tier_col:
                row["tier_threshold_tokens"] = str(int(tiers[0]["start"]))
                row[tier_col] = dec(tiers[0]["price"])
        else:
            row[col] = dec(value)
    return row


def genai_ranges(model: dict) -> list[tuple[str, str, dict]]:
    """[(valid_from, valid_to, price columns)] for one genai-prices model."""
    prices = model["prices"]
    if isinstance(prices, dict):
        return [("", "", genai_price_set(prices))]
    timed = [p for p in prices if "start_time" in p.get("constraint", {})]
    if timed:
        return [("", "", genai_price_set(timed[0]["prices"]))]
    dated = sorted(prices, key=lambda p: p.get("constraint", {}).get("start_date", ""))
    out = []
    for i, entry in enumerate(dated):
        start = entry.get("constraint", {}).get("start_date", "")
        end = dated[i + 1]["constraint"]["start_date"] if i + 1 < len(dated) else ""
        out.append((start, end, genai_price_set(entry["prices"])))
    return out


def litellm_price_set(entry: dict) -> dict:
    row = {c: "" for c in PRICE_COLUMNS}
    simple = {
        "input": "input_cost_per_token",
        "output": "output_cost_per_token",
        "cache_read": "cache_read_input_token_cost",
        "cache_write": "cache_creation_input_token_cost",
        "cache_write_1h": "cache_creation_input_token_cost_above_1hr",
        "batch_input": "input_cost_per_token_batches",
        "batch_output": "output_cost_per_token_batches",
        "priority_input": "input_cost_per_token_priority",
        "priority_output": "output_cost_per_token_priority",
        "flex_input": "input_cost_per_token_flex",
        "flex_output": "output_cost_per_token_flex",
    }
    for col, key in simple.items():
        row[col] = per_million(entry.get(key))
    for threshold in LITELLM_TIERS:
        suffix = f"_above_{threshold // 1000}k_tokens"
        tier_input = per_million(entry.get("input_cost_per_token" + suffix))
        if not tier_input:
            continue
        row["tier_threshold_tokens"] = str(threshold)
        row["tier_input"] = tier_input
        row["tier_output"] = per_million(entry.get("output_cost_per_token" + suffix))
        row["tier_cache_read"] = per_million(entry.get("cache_read_input_token_cost" + suffix))
        row["tier_cache_write"] = per_million(entry.get("cache_creation_input_token_cost" + suffix))
        break
    return row


def same_price(a: str, b: str) -> bool:
    return a != "" and b != "" and Decimal(a) == Decimal(b)


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--genai", required=True, help="genai-prices data.json")
    parser.add_argument("--litellm", required=True, help="litellm model prices JSON")
    parser.add_argument("--out", default=str(here / "catalog.csv"))
    args = parser.parse_args(argv)

    for path in (args.genai, args.litellm):
        # Compare with the sha256 recorded in NOTICE.md when refreshing the inputs.
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        print(f"{path}: sha256 {digest}", file=sys.stderr)
    genai = json.loads(Path(args.genai).read_text(encoding="utf-8"))
    litellm = json.loads(Path(args.litellm).read_text(encoding="utf-8"))

    rows: list[dict] = []
    seen: set[tuple] = set()
    claimed: dict[tuple, str] = {}

    def emit(provider, model, match, valid_from, valid_to, prices, source):
        if not prices.get("input"):
            return
        # The first source to price a (provider, model, match) owns all its ranges, so
        # ranges from two sources never overlap.
        key = (provider, model.lower(), match)
        owner = claimed.setdefault(key, source)
        if owner != source or (key, valid_from) in seen:
            return
        seen.add((key, valid_from))
        row = {"provider": provider, "model": model, "match": match, "valid_from": valid_from,
               "valid_to": valid_to, "tier": "", "source": source}
        row.update(prices)
        rows.append(row)

    # Which genai-prices model (per canonical provider) claims a given exact id.
    genai_models: dict[str, list[dict]] = {}
    for provider in genai:
        for canonical in GENAI_PROVIDERS.get(provider["id"], []):
            genai_models.setdefault(canonical, []).extend(
                dict(m, _gp=provider["id"]) for m in provider["models"])

    def genai_for(canonical: str, model_id: str):
        for m in genai_models.get(canonical, []):
            if rule_matches(m["match"], model_id):
                return m
        return None

    # litellm exact ids first: exact rows are what most lookups hit.
    for key in sorted(k for k, v in litellm.items() if isinstance(v, dict)):
        entry = litellm[key]
        canonical = LITELLM_PROVIDERS.get(entry.get("litellm_provider", ""))
        if canonical is None or entry.get("mode") not in LITELLM_MODES:
            continue
        model_id = key
        for prefix in LITELLM_KEY_PREFIXES:
            if model_id.startswith(prefix) and not (canonical == "openrouter" and prefix != "openrouter/"):
                model_id = model_id[len(prefix):]
                break
        # Region- or deployment-qualified duplicates (`azure/eu/...`, `bedrock/us-east-1/...`).
        if canonical in ("azure_openai", "aws_bedrock", "gcp_vertex", "google_gemini") and "/" in model_id:
            continue
        extra = litellm_price_set(entry)
        source = f"litellm:{key}"
        gm = genai_for(canonical, model_id)
        if gm is None:
            emit(canonical, model_id, "exact", "", "", extra, source)
            continue
        ranges = genai_ranges(gm)
        if len(ranges) == 1 and extra["input"] and not same_price(ranges[0][2]["input"], extra["input"]):
            # An undated genai-prices rule groups ids that litellm prices one by one
            # (e.g. `gpt-4o-2024-05-13`); the id-specific price is the better one.
            emit(canonical, model_id, "exact", "", "", extra, source)
            continue
        for i, (start, end, prices) in enumerate(ranges):
            merged = dict(prices)
            current = i == len(ranges) - 1
            if current and same_price(prices["input"], extra["input"]) \
                    and same_price(prices["output"], extra["output"]):
                for col in PRICE_COLUMNS:
                    if not merged[col] and extra[col]:
                        merged[col] = extra[col]
                if not prices["tier_threshold_tokens"] and extra["tier_threshold_tokens"]:
                    for col in ("tier_threshold_tokens", "tier_input", "tier_output",
                                "tier_cache_read", "tier_cache_write"):
                        merged[col] = extra[col]
            emit(canonical, model_id, "exact", start, end, merged,
                 f"genai-prices:{gm['_gp']}/{gm['id']}+{source}")

    for provider in genai:
        for canonical in GENAI_PROVIDERS.get(provider["id"], []):
            for model in provider["models"]:
                source = f"genai-prices:{provider['id']}/{model['id']}"
                for match, pattern in flatten_match(model["match"]):
                    for start, end, prices in genai_ranges(model):
                        emit(canonical, pattern, match, start, end, prices, source)

    rows.sort(key=lambda r: (r["provider"], r["model"].lower(), r["match"], r["valid_from"]))
    with open(args.out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
