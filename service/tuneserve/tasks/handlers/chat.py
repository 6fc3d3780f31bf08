"""Chat: a decoder-only model behind a chat template, sampled token by token.

Generation streams: ``decode(batch)`` yields the text each sequence gained at every step, so
a server can forward tokens as they come; ``forward`` simply drains it. Fine-tuning puts the
loss on assistant turns only: the ``{% generation %}`` marks of the chat template show them,
or, in a template without marks, what each assistant turn adds to the conversation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from transformers import AutoModelForCausalLM, DataCollatorForSeq2Seq

from tuneserve.errors import InvalidRequest
from tuneserve.tasks.chat import SPEC, ChatDelta, ChatItem, ChatOutput, ChatRow
from tuneserve.tasks.handlers.base import IGNORED, Batch, TaskHandler
from tuneserve.tasks.handlers.generation import SamplingParams, SequenceState

GENERATION_MARK = re.compile(r"\{%-?\s*generation\s*-?%\}")  # transformers' assistant marks


class ChatHandler(TaskHandler[ChatItem, ChatRow, ChatOutput]):
    spec = SPEC
    auto_model = AutoModelForCausalLM

    def _end_token_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id, self.tokenizer.convert_tokens_to_ids("<|im_end|>")}
        return {i for i in ids if i is not None and i != self.tokenizer.unk_token_id}

    def prompt_ids(self, item: ChatItem, param: str = "messages") -> list[int]:
        """Token ids of the templated conversation, ending where the assistant answers."""
        messages = [m.model_dump() for m in item.messages]
        ids = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_dict=True
        )["input_ids"]
        if len(ids) >= self.max_length:
            raise InvalidRequest(
                f"the conversation is {len(ids)} tokens; this model reads at most "
                f"{self.max_length - 1} before it must answer: shorten the messages",
                param=param,
            )
        return list(ids)

    def start(self, item: ChatItem) -> SequenceState:
        """Decoding state of one request: its sampling parameters and stop rules."""
        params = SamplingParams(**item.model_dump(exclude={"messages"}))
        return SequenceState(params, self.tokenizer, self._end_token_ids())

    def left_padded(self, prompts: list[list[int]]) -> dict[str, torch.Tensor]:
        """Prompts padded on the left, so every row's next token is in the last column."""
        padded = self.tokenizer.pad(
            [{"input_ids": p} for p in prompts], padding_side="left", return_tensors="pt"
        )
        return {key: value.to(self.device) for key, value in padded.items()}

    def step_logits(self, input_ids, attention_mask, position_ids, cache):
        """One forward pass with a KV cache: next-token logits of each row, updated cache."""
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1], out.cache

    def preprocess(self, items: Sequence[ChatItem]) -> Batch:
        many = len(items) > 1
        prompts = [
            self.prompt_ids(item, f"inputs[{i}].messages" if many else "messages")
            for i, item in enumerate(items)
        ]
        meta = {
            "states": [self.start(item) for item in items],
            "prompt_tokens": [len(p) for p in prompts],
        }
        return Batch(inputs=self.left_padded(prompts), items=items, meta=meta)

    def decode(self, batch: Batch) -> Iterator[list[ChatDelta]]:
        """Generate with a KV cache, yielding each step's deltas of the still-running rows."""
        states: list[SequenceState] = batch.meta["states"]
        attention = batch.inputs["attention_mask"]
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        step_ids, cache = batch.inputs["input_ids"], None
        pad_id = self.tokenizer.pad_token_id or 0
        while not all(state.finished for state in states):
            logits, cache = self.step_logits(step_ids, attention, positions, cache)
            context_full = attention.shape[1] + 1 >= self.max_length
            next_ids, deltas = [], []
            for row, state in enumerate(states):
                if state.finished:
                    next_ids.append(pad_id)
                    continue
                token, text = state.advance(logits[row], context_full)
                next_ids.append(token)
                deltas.append(ChatDelta(index=row, text=text, finish_reason=state.finish_reason))
            yield deltas
            step_ids = torch.tensor(next_ids, device=self.device)[:, None]
            attention = torch.cat([attention, torch.ones_like(step_ids)], dim=1)
            positions = positions[:, -1:] + 1

    def stream(self, items: Sequence[ChatItem]) -> Iterator[list[ChatDelta]]:
        """Preprocess and decode under inference mode, for a caller that streams."""
        batch = self.preprocess(items)
        with torch.inference_mode():
            yield from self.decode(batch)

    def forward(self, batch: Batch) -> list[SequenceState]:
        for _ in self.decode(batch):
            pass
        return batch.meta["states"]

    def postprocess(self, batch: Batch, outputs: list[SequenceState]) -> list[ChatOutput]:
        return [
            ChatOutput(
                content=state.text,
                finish_reason=state.finish_reason,
                prompt_tokens=prompt_tokens,
                completion_tokens=state.generated,
            )
            for state, prompt_tokens in zip(outputs, batch.meta["prompt_tokens"], strict=True)
        ]

    def training_features(self, rows: Sequence[ChatRow]) -> list[dict[str, Any]]:
        """Token ids of each dialogue, with labels only where the assistant speaks."""
        dialogues = [[m.model_dump() for m in row.messages] for row in rows]
        if GENERATION_MARK.search(self.tokenizer.chat_template or ""):
            encoded = self.tokenizer.apply_chat_template(
                dialogues, return_dict=True, return_assistant_tokens_mask=True
            )
            masked = zip(encoded["input_ids"], encoded["assistant_masks"], strict=True)
        else:
            masked = (self._assistant_mask_by_prefix(dialogue) for dialogue in dialogues)
        features = []
        for ids, assistant in masked:
            ids, assistant = ids[: self.max_length], assistant[: self.max_length]
            labels = [t if keep else IGNORED for t, keep in zip(ids, assistant, strict=True)]
            features.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
        return features

    def _assistant_mask_by_prefix(self, messages: list[dict]) -> tuple[list[int], list[int]]:
        """The assistant tokens of a template without ``{% generation %}`` marks (most
        published ones, SmolLM2's included): each assistant turn is what the conversation
        up to it gains when it is added after the generation prompt."""

        def render(turns: list[dict], prompt: bool) -> list[int]:
            return list(
                self.tokenizer.apply_chat_template(
                    turns, add_generation_prompt=prompt, return_dict=True
                )["input_ids"]
            )

        ids = render(messages, False)
        mask = [0] * len(ids)
        for turn, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            before, through = render(messages[:turn], True), render(messages[: turn + 1], False)
            start, end = len(before), len(through)
            if ids[:start] != before or ids[:end] != through:
                raise InvalidRequest(
                    "the chat template renders a conversation differently from its own "
                    "beginning, so the assistant turns cannot be found: add {% generation %} "
                    "marks to the template",
                    param="messages",
                )
            mask[start:end] = [1] * (end - start)
        return ids, mask

    @property
    def collator(self) -> DataCollatorForSeq2Seq:
        return DataCollatorForSeq2Seq(
            self.tokenizer, label_pad_token_id=IGNORED, return_tensors="pt"
        )

    def evaluate(self, rows: Sequence[ChatRow], *, batch_size: int = 32) -> dict[str, Any]:
        """Loss, perplexity and next-token accuracy on assistant tokens, teacher-forced."""
        features = self.training_features(rows)
        total_loss = correct = counted = 0.0
        for start in range(0, len(features), batch_size):
            batch = self.collate(features[start : start + batch_size])
            with torch.inference_mode():
                logits = self.model(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                ).logits
            targets = batch["labels"][:, 1:]
            scored = targets != IGNORED
            log_probs = logits[:, :-1].float().log_softmax(-1)
            picked = log_probs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            total_loss -= float(picked[scored].sum())
            correct += float((logits[:, :-1].argmax(-1) == targets)[scored].sum())
            counted += float(scored.sum())
        loss = total_loss / max(counted, 1)
        return {
            "loss": loss,
            "perplexity": math.exp(min(loss, 50)),
            "token_accuracy": correct / max(counted, 1),
        }
