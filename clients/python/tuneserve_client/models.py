"""The API's request and response bodies, GENERATED from the service's OpenAPI
document by ``clients/python/codegen.py`` (datamodel-code-generator): do not edit; run
``make client-models`` after changing the service's schemas."""

from __future__ import annotations
from typing import Annotated, Any, Literal
from pydantic import BaseModel, ConfigDict, Field, RootModel


class AliasMovePublic(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    alias: Annotated[str, Field(title="Alias")]
    changed: Annotated[bool, Field(title="Changed")] = True
    """
    False when the version was production already: nothing moved.
    """
    from_version: Annotated[int | None, Field(title="From Version")]
    model: Annotated[str, Field(title="Model")]
    seconds: Annotated[float, Field(title="Seconds")]
    """
    Load, warm-up on every replica, and the flip.
    """
    to_version: Annotated[int, Field(title="To Version")]
    warning: Annotated[str | None, Field(title="Warning")] = None
    """
    A step after the move failed (re-pinning replicas); production did move.
    """


class AssistantMessage(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    content: Annotated[str, Field(title="Content")]
    role: Annotated[Literal["assistant"], Field(title="Role")] = "assistant"


class BodyUploadFileV1FilesPost(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    file: Annotated[
        str,
        Field(
            json_schema_extra={"contentMediaType": "application/octet-stream"},
            title="File",
        ),
    ]
    """
    JSONL or CSV rows in a task's schema.
    """
    purpose: Annotated[str, Field(title="Purpose")]
    """
    Must be 'fine-tune'.
    """
    task: Annotated[str | None, Field(title="Task")] = None
    """
    Default: inferred from the rows.
    """


class MaxCompletionTokens(RootModel[int]):
    root: Annotated[int, Field(ge=1, title="Max Completion Tokens")]
    """
    Most tokens to generate; above the server's limit is a 400.
    """


class MaxTokens(RootModel[int]):
    root: Annotated[int, Field(ge=1, title="Max Tokens")]
    """
    Deprecated by OpenAI for max_completion_tokens.
    """


class Seed(RootModel[int]):
    root: Annotated[
        int, Field(ge=-9223372036854776000, le=9223372036854776000, title="Seed")
    ]


class StopItem(RootModel[str]):
    root: Annotated[str, Field(max_length=64, min_length=1)]


class Stop(RootModel[list[StopItem]]):
    root: Annotated[list[StopItem], Field(max_length=4, title="Stop")]
    """
    A string or up to 4 strings; generation ends before the first found.
    """


class ChatMessage(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    content: Annotated[str, Field(title="Content")]
    role: Annotated[Literal["system", "user", "assistant"], Field(title="Role")]


class CheckpointPublic(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    created_at: Annotated[int, Field(title="Created At")]
    fine_tuned_model_checkpoint: Annotated[
        str, Field(title="Fine Tuned Model Checkpoint")
    ]
    fine_tuning_job_id: Annotated[str, Field(title="Fine Tuning Job Id")]
    id: Annotated[str, Field(title="Id")]
    metrics: Annotated[dict[str, Any], Field(title="Metrics")]
    object: Annotated[Literal["fine_tuning.job.checkpoint"], Field(title="Object")] = (
        "fine_tuning.job.checkpoint"
    )
    step_number: Annotated[int, Field(title="Step Number")]


class Choice(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    finish_reason: Annotated[Literal["stop", "length"], Field(title="Finish Reason")]
    index: Annotated[int, Field(title="Index")] = 0
    logprobs: Annotated[None, Field(title="Logprobs")] = None
    message: AssistantMessage


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
    )
    inputs: Annotated[
        str | list[str], Field(examples=["The concert was wonderful."], title="Inputs")
    ]
    model: Annotated[
        str | None,
        Field(
            examples=["sentiment", "sentiment@1", "sentiment@production"], title="Model"
        ),
    ] = None
    """
    `name`, `name@<version>` or `name@<alias>`; default: the task's default model at `production`.
    """
    top_k: Annotated[int, Field(ge=1, le=100, title="Top K")] = 1
    """
    Labels per input, best first.
    """
    variant: Annotated[
        Literal["fp32", "int8", "bf16", "onnx", "onnx-int8", "by-size"] | None,
        Field(title="Variant"),
    ] = None
    """
    The form of the version to run. Omitted: the one verified to serve (an optimised variant that passed verification, else fp32; see the version's `variants`). 'fp32': the weights as trained. 'int8': dynamic quantisation; 'bf16': the encoder in bfloat16; 'onnx': ONNX Runtime, its graph fused; 'onnx-int8': that graph with int8 weights; each even where verification rejected it, to compare. 'by-size': two verified variants, small batches on the one fastest alone, large on the one fastest in batches (where the version's `variants` has a `by-size` verdict).
    """


class Delta(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    content: Annotated[str | None, Field(title="Content")] = None
    role: Annotated[Literal["assistant"] | None, Field(title="Role")] = None


class Entity(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    end: Annotated[int, Field(title="End")]
    """
    Character offset one past the last character.
    """
    label: Annotated[str, Field(title="Label")]
    score: Annotated[float, Field(title="Score")]
    start: Annotated[int, Field(title="Start")]
    """
    Character offset of the first character.
    """
    text: Annotated[str, Field(title="Text")]


class ErrorDetail(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    code: Annotated[str | None, Field(title="Code")] = None
    message: Annotated[str, Field(title="Message")]
    param: Annotated[str | None, Field(title="Param")] = None
    type: Annotated[str, Field(title="Type")]


class EventPublic(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    created_at: Annotated[int, Field(title="Created At")]
    data: Annotated[dict[str, Any] | None, Field(title="Data")] = None
    id: Annotated[str, Field(title="Id")]
    level: Annotated[str, Field(title="Level")]
    message: Annotated[str, Field(title="Message")]
    object: Annotated[Literal["fine_tuning.job.event"], Field(title="Object")] = (
        "fine_tuning.job.event"
    )
    type: Annotated[str, Field(title="Type")]


class FileDeleted(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    deleted: Annotated[bool, Field(title="Deleted")] = True
    id: Annotated[str, Field(title="Id")]
    object: Annotated[Literal["file"], Field(title="Object")] = "file"


class FilePublic(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    bytes: Annotated[int, Field(title="Bytes")]
    created_at: Annotated[int, Field(title="Created At")]
    filename: Annotated[str, Field(title="Filename")]
    id: Annotated[str, Field(title="Id")]
    labels: Annotated[list[str], Field(title="Labels")]
    object: Annotated[Literal["file"], Field(title="Object")] = "file"
    owner: Annotated[str, Field(title="Owner")]
    """
    The tenant the file belongs to.
    """
    purpose: Annotated[str, Field(title="Purpose")]
    rows: Annotated[int, Field(title="Rows")]
    sha256: Annotated[str, Field(title="Sha256")]
    status: Annotated[Literal["processed"], Field(title="Status")] = "processed"
    task: Annotated[str, Field(title="Task")]


class BatchSize(RootModel[int]):
    root: Annotated[int, Field(ge=1, title="Batch Size")] = "auto"


class EarlyStoppingPatience(RootModel[int]):
    root: Annotated[int, Field(ge=1, title="Early Stopping Patience")]
    """
    Stop after this many epochs without a lower validation loss.
    """


class LearningRate(RootModel[float]):
    root: Annotated[float, Field(gt=0.0, title="Learning Rate")]
    """
    Overrides multiplier.
    """


class LearningRateMultiplier(RootModel[float]):
    root: Annotated[float, Field(gt=0.0, title="Learning Rate Multiplier")] = "auto"


class MaxSequenceLength(RootModel[int]):
    root: Annotated[int, Field(gt=8, title="Max Sequence Length")]


class NEpochs(RootModel[int]):
    root: Annotated[int, Field(ge=1, title="N Epochs")] = "auto"


class Hyperparameters(BaseModel):
    """
    Training knobs; ``auto`` picks the task's default.
    """

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
    )
    allow_new_labels: Annotated[bool, Field(title="Allow New Labels")] = False
    """
    Add labels (NER: entity types) the base model lacks to its output head, instead of refusing the file.
    """
    batch_size: Annotated[
        BatchSize | Literal["auto"], Field(title="Batch Size", validate_default=True)
    ] = "auto"
    early_stopping_patience: Annotated[
        EarlyStoppingPatience | None, Field(title="Early Stopping Patience")
    ] = None
    """
    Stop after this many epochs without a lower validation loss.
    """
    learning_rate: Annotated[LearningRate | None, Field(title="Learning Rate")] = None
    """
    Overrides multiplier.
    """
    learning_rate_multiplier: Annotated[
        LearningRateMultiplier | Literal["auto"],
        Field(title="Learning Rate Multiplier", validate_default=True),
    ] = "auto"
    max_sequence_length: Annotated[
        MaxSequenceLength | None, Field(title="Max Sequence Length")
    ] = None
    n_epochs: Annotated[
        NEpochs | Literal["auto"], Field(title="N Epochs", validate_default=True)
    ] = "auto"
    num_workers: Annotated[int, Field(ge=1, title="Num Workers")] = 1
    """
    Ray Train workers (DDP).
    """
    seed: Annotated[int | None, Field(title="Seed")] = None
    use_gpu: Annotated[bool | None, Field(title="Use Gpu")] = None
    """
    One GPU per worker; default: the deployment's setting.
    """
    warmup_ratio: Annotated[float, Field(ge=0.0, lt=1.0, title="Warmup Ratio")] = 0.1
    weight_decay: Annotated[float, Field(ge=0.0, title="Weight Decay")] = 0.01


class Description(RootModel[str]):
    root: Annotated[str, Field(max_length=500, title="Description")]


class ImportModelRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
    )
    alias: Annotated[
        Literal["production", "candidate"] | None, Field(title="Alias")
    ] = None
    """
    Point this alias at the new version; only for a model that has no version under that alias yet (otherwise promote it: replicas warm it first).
    """
    description: Annotated[Description | None, Field(title="Description")] = None
    name: Annotated[str, Field(max_length=100, min_length=1, title="Name")]
    """
    The registry model it becomes a version of (created if new).
    """
    source: Annotated[
        str,
        Field(
            examples=["s3://models/sst2-minilm", "hf://org/name@v1.0"],
            max_length=2048,
            min_length=1,
            title="Source",
        ),
    ]
    """
    A Hugging Face model folder (safetensors) as a path the service can read, any fsspec URL (`s3://bucket/models/x`, `file:///…`), or a hub id with a pinned revision (`hf://org/name@<commit or tag>`, where the cluster reaches the hub).
    """
    task: Annotated[str | None, Field(title="Task")] = None
    """
    The task it serves; default: inferred from `config.architectures`.
    """


class ImportedModel(BaseModel):
    """
    The version an import registered, and what the checks found.
    """

    model_config = ConfigDict(
        populate_by_name=True,
    )
    alias: Annotated[str | None, Field(title="Alias")]
    architecture: Annotated[str, Field(title="Architecture")]
    labels: Annotated[list[str], Field(title="Labels")]
    """
    The head's labels in id order (labelled tasks).
    """
    left_behind: Annotated[list[str], Field(title="Left Behind")]
    """
    Pickled weights next to safetensors, not copied.
    """
    model: Annotated[str, Field(title="Model")]
    object: Annotated[Literal["model.version"], Field(title="Object")] = "model.version"
    sha256: Annotated[str, Field(title="Sha256")]
    """
    Of the weights; checked whenever the version is loaded.
    """
    size_bytes: Annotated[int, Field(title="Size Bytes")]
    task: Annotated[str, Field(title="Task")]
    version: Annotated[int, Field(title="Version")]


class Label(RootModel[str]):
    root: Annotated[str, Field(max_length=100, min_length=1)]


class Labels(RootModel[list[Label]]):
    root: Annotated[list[Label], Field(max_length=1000, min_length=1, title="Labels")]
    """
    Start a fresh head for these labels (classification: classes in id order; ner: entity types or IOB2 tags) instead of the base's head. Needs `suffix`.
    """


class Suffix(RootModel[str]):
    root: Annotated[str, Field(pattern="^[a-z0-9_-]{1,40}$", title="Suffix")]
    """
    Write to a new model `<base>:<suffix>` (1-40 lowercase letters, digits, '-' or '_') instead of a new version of the base; the base's production is untouched.
    """


class JobError(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    code: Annotated[str, Field(title="Code")]
    message: Annotated[str, Field(title="Message")]
    param: Annotated[str | None, Field(title="Param")] = None


class JobPublic(BaseModel):
    """
    A job, read from its record with ``from_attributes``.
    """

    model_config = ConfigDict(
        populate_by_name=True,
    )
    base_version: Annotated[int, Field(title="Base Version")]
    created_at: Annotated[int, Field(title="Created At")]
    error: JobError | None
    estimated_finish: Annotated[int | None, Field(title="Estimated Finish")] = None
    fine_tuned_model: Annotated[str | None, Field(title="Fine Tuned Model")]
    finished_at: Annotated[int | None, Field(title="Finished At")]
    hyperparameters: Annotated[dict[str, Any], Field(title="Hyperparameters")]
    id: Annotated[str, Field(title="Id")]
    integrations: Annotated[list[Any] | None, Field(title="Integrations")] = None
    metadata: Annotated[dict[str, str] | None, Field(title="Metadata")] = None
    method: Annotated[dict[str, Any] | None, Field(title="Method")] = None
    model: Annotated[str, Field(title="Model")]
    object: Annotated[Literal["fine_tuning.job"], Field(title="Object")] = (
        "fine_tuning.job"
    )
    organization_id: Annotated[str, Field(title="Organization Id")]
    """
    The tenant that owns the job.
    """
    promotion: Annotated[dict[str, Any], Field(title="Promotion")]
    result: Annotated[dict[str, Any] | None, Field(title="Result")]
    result_files: Annotated[list[str] | None, Field(title="Result Files")] = None
    seed: Annotated[int | None, Field(title="Seed")]
    status: Annotated[str, Field(title="Status")]
    task: Annotated[str, Field(title="Task")]
    trained_examples: Annotated[int | None, Field(title="Trained Examples")]
    trained_tokens: Annotated[int | None, Field(title="Trained Tokens")]
    training_file: Annotated[str, Field(title="Training File")]
    user_provided_suffix: Annotated[str | None, Field(title="User Provided Suffix")]
    validation_file: Annotated[str | None, Field(title="Validation File")]


class KeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
    )
    name: Annotated[str, Field(max_length=200, title="Name")] = ""
    """
    A note: who or what uses it.
    """
    scopes: Annotated[
        list[Literal["inference", "fine_tune", "admin"]],
        Field(max_length=3, min_length=1, title="Scopes"),
    ]
    tenant: Annotated[str, Field(pattern="^[a-z0-9][a-z0-9_-]{0,63}$", title="Tenant")]
    """
    Whose files and jobs the key sees and makes.
    """


class KeyCreated(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    created_at: Annotated[int, Field(title="Created At")]
    id: Annotated[str, Field(title="Id")]
    key: Annotated[str, Field(title="Key")]
    """
    The key itself, shown this once: it is stored hashed.
    """
    name: Annotated[str, Field(title="Name")]
    object: Annotated[Literal["api_key"], Field(title="Object")] = "api_key"
    revoked_at: Annotated[int | None, Field(title="Revoked At")]
    scopes: Annotated[
        list[Literal["inference", "fine_tune", "admin"]], Field(title="Scopes")
    ]
    tenant: Annotated[str, Field(title="Tenant")]


class KeyPublic(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    created_at: Annotated[int, Field(title="Created At")]
    id: Annotated[str, Field(title="Id")]
    name: Annotated[str, Field(title="Name")]
    object: Annotated[Literal["api_key"], Field(title="Object")] = "api_key"
    revoked_at: Annotated[int | None, Field(title="Revoked At")]
    scopes: Annotated[
        list[Literal["inference", "fine_tune", "admin"]], Field(title="Scopes")
    ]
    tenant: Annotated[str, Field(title="Tenant")]


class LabelScore(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    label: Annotated[str, Field(title="Label")]
    score: Annotated[float, Field(title="Score")]


class TargetModule(RootModel[str]):
    root: Annotated[
        str, Field(max_length=100, min_length=1, pattern="^[A-Za-z0-9_.]+$")
    ]


class TargetModules(RootModel[list[TargetModule]]):
    root: Annotated[
        list[TargetModule], Field(max_length=64, min_length=1, title="Target Modules")
    ]
    """
    Names of the layers to adapt (e.g. query, value). Default: PEFT's choice for the architecture, else every linear layer but the output one.
    """


class LoraParameters(BaseModel):
    """
    A LoRA version: low-rank adapters on the base's layers (PEFT), the head trained whole.

    The version stores only the adapter; it is served on its base's weights, which stay
    resident once per replica for every adapter version of that base.
    """

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
    )
    alpha: Annotated[float, Field(gt=0.0, title="Alpha")] = 16.0
    """
    Scale: updates are alpha / r.
    """
    dropout: Annotated[float, Field(ge=0.0, lt=1.0, title="Dropout")] = 0.05
    """
    Dropout on the adapter input.
    """
    r: Annotated[int, Field(ge=1, le=256, title="R")] = 8
    """
    Rank of each adapter's matrices.
    """
    target_modules: Annotated[TargetModules | None, Field(title="Target Modules")] = (
        None
    )
    """
    Names of the layers to adapt (e.g. query, value). Default: PEFT's choice for the architecture, else every linear layer but the output one.
    """


class Method(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
    )
    lora: LoraParameters | None = None
    supervised: Annotated[dict[str, Any] | None, Field(title="Supervised")] = None
    type: Annotated[Literal["supervised", "lora"], Field(title="Type")] = "supervised"


class ModelPublic(BaseModel):
    """
    A registry model, OpenAI-shaped (read from its record with ``from_attributes``).
    """

    model_config = ConfigDict(
        populate_by_name=True,
    )
    aliases: Annotated[dict[str, int], Field(title="Aliases")]
    created: Annotated[int, Field(title="Created")]
    description: Annotated[str, Field(title="Description")]
    id: Annotated[str, Field(title="Id")]
    object: Annotated[str, Field(title="Object")] = "model"
    owned_by: Annotated[str, Field(title="Owned By")] = "tuneserve"
    task: Annotated[str, Field(title="Task")]


class NerOutput(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    entities: Annotated[list[Entity], Field(title="Entities")]
    truncated: Annotated[bool, Field(title="Truncated")]
    """
    True when text past the model's length was not read.
    """


class NerRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
    )
    inputs: Annotated[
        str | list[str], Field(examples=["Anna Schmidt flew to Paris."], title="Inputs")
    ]
    model: Annotated[
        str | None,
        Field(
            examples=["sentiment", "sentiment@1", "sentiment@production"], title="Model"
        ),
    ] = None
    """
    `name`, `name@<version>` or `name@<alias>`; default: the task's default model at `production`.
    """
    variant: Annotated[
        Literal["fp32", "int8", "bf16", "onnx", "onnx-int8", "by-size"] | None,
        Field(title="Variant"),
    ] = None
    """
    The form of the version to run. Omitted: the one verified to serve (an optimised variant that passed verification, else fp32; see the version's `variants`). 'fp32': the weights as trained. 'int8': dynamic quantisation; 'bf16': the encoder in bfloat16; 'onnx': ONNX Runtime, its graph fused; 'onnx-int8': that graph with int8 weights; each even where verification rejected it, to compare. 'by-size': two verified variants, small batches on the one fastest alone, large on the one fastest in batches (where the version's `variants` has a `by-size` verdict).
    """


class NerResponse(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    model: Annotated[str, Field(title="Model")]
    results: Annotated[list[NerOutput], Field(title="Results")]
    variant: Annotated[
        Literal["fp32", "int8", "bf16", "onnx", "onnx-int8", "by-size"],
        Field(title="Variant"),
    ] = "fp32"
    version: Annotated[int, Field(title="Version")]


class PromoteRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
    )
    expected_from: Annotated[int | None, Field(title="Expected From")] = None
    """
    Production version you expect now (compare-and-set).
    """
    version: Annotated[int, Field(ge=1, title="Version")]


class Promotion(BaseModel):
    """
    When a trained candidate replaces production.
    """

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
    )
    auto: Annotated[bool | None, Field(title="Auto")] = None
    """
    Promote automatically when the gate passes. Moving production needs the admin scope: default true for an admin key, false for any other.
    """
    metric: Annotated[str | None, Field(title="Metric")] = None
    """
    Default: the task's primary metric.
    """
    min_delta: Annotated[float, Field(ge=0.0, title="Min Delta")] = 0.0
    """
    How much better the candidate must be (never negative: a gate that lets a worse model through is no gate).
    """


class QaItem(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
    )
    context: Annotated[str, Field(min_length=1, title="Context")]
    question: Annotated[str, Field(min_length=1, title="Question")]


class QaOutput(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    answer: Annotated[str, Field(title="Answer")]
    end: Annotated[int, Field(title="End")]
    """
    Character offset one past the answer's end.
    """
    score: Annotated[float, Field(title="Score")]
    start: Annotated[int, Field(title="Start")]
    """
    Character offset of the answer in the context.
    """


class Context(RootModel[str]):
    root: Annotated[str, Field(min_length=1, title="Context")]


class Question(RootModel[str]):
    root: Annotated[str, Field(min_length=1, title="Question")]


class QaRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
    )
    context: Annotated[Context | None, Field(title="Context")] = None
    inputs: Annotated[list[QaItem] | None, Field(title="Inputs")] = None
    """
    Several question/context pairs.
    """
    model: Annotated[
        str | None,
        Field(
            examples=["sentiment", "sentiment@1", "sentiment@production"], title="Model"
        ),
    ] = None
    """
    `name`, `name@<version>` or `name@<alias>`; default: the task's default model at `production`.
    """
    question: Annotated[Question | None, Field(title="Question")] = None
    variant: Annotated[
        Literal["fp32", "int8", "bf16", "onnx", "onnx-int8", "by-size"] | None,
        Field(title="Variant"),
    ] = None
    """
    The form of the version to run. Omitted: the one verified to serve (an optimised variant that passed verification, else fp32; see the version's `variants`). 'fp32': the weights as trained. 'int8': dynamic quantisation; 'bf16': the encoder in bfloat16; 'onnx': ONNX Runtime, its graph fused; 'onnx-int8': that graph with int8 weights; each even where verification rejected it, to compare. 'by-size': two verified variants, small batches on the one fastest alone, large on the one fastest in batches (where the version's `variants` has a `by-size` verdict).
    """


class QaResponse(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    model: Annotated[str, Field(title="Model")]
    results: Annotated[list[QaOutput], Field(title="Results")]
    variant: Annotated[
        Literal["fp32", "int8", "bf16", "onnx", "onnx-int8", "by-size"],
        Field(title="Variant"),
    ] = "fp32"
    version: Annotated[int, Field(title="Version")]


class Version(RootModel[int]):
    root: Annotated[int, Field(ge=1, title="Version")]
    """
    A version that was production before, to go back to.
    """


class RollbackRequest(BaseModel):
    """
    Optional body of a rollback; without ``version``, production goes back to the version
    its last promotion replaced (refused right after another rollback).
    """

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
    )
    version: Annotated[Version | None, Field(title="Version")] = None
    """
    A version that was production before, to go back to.
    """


class StreamOptions(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    include_usage: Annotated[bool, Field(title="Include Usage")] = False


class TranslateRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
    )
    inputs: Annotated[
        str | list[str], Field(examples=["The woman buys the book."], title="Inputs")
    ]
    max_new_tokens: Annotated[int, Field(ge=1, title="Max New Tokens")] = 64
    """
    Most tokens per translation.
    """
    model: Annotated[
        str | None,
        Field(
            examples=["sentiment", "sentiment@1", "sentiment@production"], title="Model"
        ),
    ] = None
    """
    `name`, `name@<version>` or `name@<alias>`; default: the task's default model at `production`.
    """
    variant: Annotated[
        Literal["fp32", "int8", "bf16", "onnx", "onnx-int8", "by-size"] | None,
        Field(title="Variant"),
    ] = None
    """
    The form of the version to run. Omitted: the one verified to serve (an optimised variant that passed verification, else fp32; see the version's `variants`). 'fp32': the weights as trained. 'int8': dynamic quantisation; 'bf16': the encoder in bfloat16; 'onnx': ONNX Runtime, its graph fused; 'onnx-int8': that graph with int8 weights; each even where verification rejected it, to compare. 'by-size': two verified variants, small batches on the one fastest alone, large on the one fastest in batches (where the version's `variants` has a `by-size` verdict).
    """


class TranslationOutput(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    translation: Annotated[str, Field(title="Translation")]
    truncated: Annotated[bool, Field(title="Truncated")]
    """
    True when the source was cut to the model's length.
    """


class Usage(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    completion_tokens: Annotated[int, Field(title="Completion Tokens")]
    prompt_tokens: Annotated[int, Field(title="Prompt Tokens")]
    total_tokens: Annotated[int, Field(title="Total Tokens")]


class VersionPublic(BaseModel):
    """
    A registry version (read from its record with ``from_attributes``).
    """

    model_config = ConfigDict(
        populate_by_name=True,
    )
    aliases: Annotated[list[str], Field(title="Aliases")]
    base_version: Annotated[int | None, Field(title="Base Version")]
    created_at: Annotated[str, Field(title="Created At")]
    lineage: Annotated[dict[str, Any], Field(title="Lineage")]
    metrics: Annotated[dict[str, Any], Field(title="Metrics")]
    sha256: Annotated[str, Field(title="Sha256")]
    task: Annotated[str, Field(title="Task")]
    variants: Annotated[dict[str, Any] | None, Field(title="Variants")] = None
    """
    Optimised variants verified against fp32 on the validation rows: per variant (int8, bf16, onnx, onnx-int8), serve, reason, metric, fp32, value, agreement, speedup (in batches of 32 and alone; each shape's as speedup_batched and speedup_alone), items; and `by-size` where two that passed are each fastest at one batch size (small, large, from_rows). A request gets the one that serves (or fp32); `variant` in the body picks one.
    """
    version: Annotated[int, Field(title="Version")]


class ChatCompletion(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    choices: Annotated[list[Choice], Field(title="Choices")]
    created: Annotated[int, Field(title="Created")]
    id: Annotated[str, Field(title="Id")]
    model: Annotated[str, Field(title="Model")]
    object: Annotated[Literal["chat.completion"], Field(title="Object")] = (
        "chat.completion"
    )
    usage: Usage
    version: Annotated[int, Field(title="Version")]


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    ignore_eos: Annotated[bool, Field(title="Ignore Eos")] = False
    """
    Keep generating past end-of-turn.
    """
    max_completion_tokens: Annotated[
        MaxCompletionTokens | None, Field(title="Max Completion Tokens")
    ] = None
    """
    Most tokens to generate; above the server's limit is a 400.
    """
    max_tokens: Annotated[MaxTokens | None, Field(title="Max Tokens")] = None
    """
    Deprecated by OpenAI for max_completion_tokens.
    """
    messages: Annotated[list[ChatMessage], Field(min_length=1, title="Messages")]
    model: Annotated[str | None, Field(title="Model")] = None
    n: Annotated[int, Field(ge=1, le=1, title="N")] = 1
    """
    Only one choice per request.
    """
    seed: Annotated[Seed | None, Field(title="Seed")] = None
    stop: Annotated[Stop | None, Field(title="Stop")] = None
    """
    A string or up to 4 strings; generation ends before the first found.
    """
    stream: Annotated[bool, Field(title="Stream")] = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0, title="Temperature")] = 1.0
    """
    0 (or below 0.0001) decodes greedily.
    """
    top_p: Annotated[float, Field(gt=0.0, le=1.0, title="Top P")] = 1.0


class CheckpointList(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    data: Annotated[list[CheckpointPublic], Field(title="Data")]
    has_more: Annotated[bool, Field(title="Has More")] = False
    object: Annotated[Literal["list"], Field(title="Object")] = "list"


class ChunkChoice(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    delta: Delta
    finish_reason: Annotated[
        Literal["stop", "length"] | None, Field(title="Finish Reason")
    ] = None
    index: Annotated[int, Field(title="Index")] = 0
    logprobs: Annotated[None, Field(title="Logprobs")] = None


class ClassificationOutput(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    label: Annotated[str, Field(title="Label")]
    score: Annotated[float, Field(title="Score")]
    top: Annotated[list[LabelScore], Field(title="Top")]
    truncated: Annotated[bool, Field(title="Truncated")]
    """
    True when the text was cut to the model's length.
    """


class ClassifyResponse(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    model: Annotated[str, Field(title="Model")]
    results: Annotated[list[ClassificationOutput], Field(title="Results")]
    variant: Annotated[
        Literal["fp32", "int8", "bf16", "onnx", "onnx-int8", "by-size"],
        Field(title="Variant"),
    ] = "fp32"
    version: Annotated[int, Field(title="Version")]


class ErrorBody(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    error: ErrorDetail


class EventList(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    data: Annotated[list[EventPublic], Field(title="Data")]
    has_more: Annotated[bool, Field(title="Has More")]
    object: Annotated[Literal["list"], Field(title="Object")] = "list"


class FileList(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    data: Annotated[list[FilePublic], Field(title="Data")]
    has_more: Annotated[bool, Field(title="Has More")] = False
    object: Annotated[Literal["list"], Field(title="Object")] = "list"


class JobCreate(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    hyperparameters: Hyperparameters | None = None
    labels: Annotated[Labels | None, Field(title="Labels")] = None
    """
    Start a fresh head for these labels (classification: classes in id order; ner: entity types or IOB2 tags) instead of the base's head. Needs `suffix`.
    """
    metadata: Annotated[dict[str, str] | None, Field(title="Metadata")] = None
    method: Method | None = None
    model: Annotated[str, Field(title="Model")]
    """
    Base model: `name`, `name@<version>` or `name@<alias>`.
    """
    promotion: Promotion | None = None
    seed: Annotated[int | None, Field(title="Seed")] = None
    suffix: Annotated[Suffix | None, Field(title="Suffix")] = None
    """
    Write to a new model `<base>:<suffix>` (1-40 lowercase letters, digits, '-' or '_') instead of a new version of the base; the base's production is untouched.
    """
    task: Annotated[str | None, Field(title="Task")] = None
    """
    Default: the base model's task. With `labels`, any task whose models are heads on an encoder (classification, ner), from any encoder base.
    """
    training_file: Annotated[str, Field(title="Training File")]
    validation_file: Annotated[str | None, Field(title="Validation File")] = None


class JobList(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    data: Annotated[list[JobPublic], Field(title="Data")]
    has_more: Annotated[bool, Field(title="Has More")]
    object: Annotated[Literal["list"], Field(title="Object")] = "list"


class KeyList(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    data: Annotated[list[KeyPublic], Field(title="Data")]
    object: Annotated[Literal["list"], Field(title="Object")] = "list"


class ModelList(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    data: Annotated[list[ModelPublic], Field(title="Data")]
    object: Annotated[str, Field(title="Object")] = "list"


class TranslateResponse(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    model: Annotated[str, Field(title="Model")]
    results: Annotated[list[TranslationOutput], Field(title="Results")]
    variant: Annotated[
        Literal["fp32", "int8", "bf16", "onnx", "onnx-int8", "by-size"],
        Field(title="Variant"),
    ] = "fp32"
    version: Annotated[int, Field(title="Version")]


class VersionList(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    data: Annotated[list[VersionPublic], Field(title="Data")]
    model: Annotated[str, Field(title="Model")]
    object: Annotated[str, Field(title="Object")] = "list"


class ChatCompletionChunk(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
    )
    choices: Annotated[list[ChunkChoice], Field(title="Choices")]
    created: Annotated[int, Field(title="Created")]
    id: Annotated[str, Field(title="Id")]
    model: Annotated[str, Field(title="Model")]
    object: Annotated[Literal["chat.completion.chunk"], Field(title="Object")] = (
        "chat.completion.chunk"
    )
    usage: Usage | None = None
    version: Annotated[int, Field(title="Version")]
