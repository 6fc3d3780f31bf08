"""The guards of the API: keys, per-tenant quotas and the sizes accepted before any work.

Kept apart from the other sections because every one of these is a security decision:
a reviewer reads them together.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tuneserve.settings.sections import Section


class AuthSettings(Section):
    """API keys (``TUNESERVE_AUTH__*``); keys themselves live in the registry."""

    mode: Literal["auto", "keys", "open"] = Field(
        default="auto",
        description="'keys': every API route needs a key. 'open': no keys, every caller is "
        "admin (refused unless the HTTP proxy binds a loopback address). 'auto': open when "
        "`tuneserve run` binds loopback and no key or admin token exists, else keys.",
    )
    key_cache_ttl_s: float = Field(
        default=5.0,
        gt=0,
        description="How long a gateway trusts its copy of the active keys: a revoked key "
        "stops working within this time.",
    )


class TenantQuotas(Section):
    """What one tenant may hold at once (``TUNESERVE_QUOTAS__*``)."""

    max_queued_jobs: int = Field(
        default=8, ge=1, description="Unfinished fine-tuning jobs one tenant may have."
    )
    max_stored_bytes: int = Field(
        default=2 * 2**30, ge=1, description="Bytes of uploaded files one tenant may keep."
    )


class LimitSettings(Section):
    """Sizes accepted before any work is done (``TUNESERVE_LIMITS__*``)."""

    max_input_chars: int = Field(
        default=20_000, gt=0, description="Longest text accepted in one input item."
    )
    max_batch_items: int = Field(
        default=64, gt=0, description="Most input items accepted in one request."
    )
    max_new_tokens: int = Field(
        default=512, gt=0, description="Upper bound on generated tokens per item."
    )
    max_sequence_length: int = Field(
        default=256,
        gt=8,
        description="Model input tokens per item; longer is truncated "
        "(classification, NER, translation) or windowed with a stride (QA).",
    )
    max_upload_bytes: int = Field(default=50 * 2**20, gt=0, description="Largest file upload.")
    max_file_rows: int = Field(default=200_000, gt=0, description="Most rows in one file.")
    max_import_bytes: int = Field(
        default=4 * 2**30,
        gt=0,
        description="Largest model a user may import (POST /v1/models), its files summed; "
        "checked before any byte is copied.",
    )
    max_file_errors: int = Field(default=20, gt=0, description="Row errors listed per upload.")
    max_json_body_bytes: int = Field(
        default=8 * 2**20,
        gt=0,
        description="Largest request body of every route but uploads, counted as it streams "
        "in (413 past it). A full batch (max_batch_items texts of max_input_chars) is 1.3 MB "
        "of ASCII and up to 7.7 MB with every character \\u-escaped, as JSON encoders do by "
        "default; raise this with those two.",
    )
    max_concurrent_uploads: int = Field(
        default=4,
        gt=0,
        description="Uploads one gateway replica reads at once; past it a 503 with "
        "Retry-After, before any of the body is read. Each holds up to max_upload_bytes "
        "in memory while its rows are checked.",
    )
    max_epochs: int = Field(default=50, gt=0, description="Largest n_epochs of a job.")
    max_training_batch_size: int = Field(
        default=256, gt=0, description="Largest batch_size of a fine-tuning job."
    )
    max_epoch_rows: int = Field(
        default=2_000_000,
        gt=0,
        description="Most rows one job may train on: n_epochs × the training file's rows "
        "(the default: 10 epochs of a file of max_file_rows).",
    )
