"""The policy model: state encoder, action encoder, consequence representation, heads.

``z = f(state, action)`` is the *consequence representation*: the policy scores each
candidate command from it, and the world-model head (implicit world modeling) predicts the
next observation from the same ``z``, so world-model training shapes exactly the features
the policy decides from. The value head reads the state vector alone.

Look-ahead (``ModelConfig.lookahead``, off by default): the policy also scores each command
from its *outcome*, the tokens that appear in the next observation, which a linear score on
``z`` cannot read off a predicted bag of tokens. At acting time the outcome is the world
model's prediction (its "appear" channel's most likely tokens, see
:meth:`PolicyModel.predicted_outcome`); a learner may feed the observed outcome of a command
its rollouts tried (:class:`Outcome`). The prediction is detached: the policy's loss never
trains the world-model head into a second policy head, so the prediction stays a prediction.

Shapes: ``B`` states, ``L`` state tokens, ``A`` candidate commands, ``T`` tokens per command,
``d = d_model``. Inputs are the tensors of :func:`agents.features.collate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from agents.tokenizer import MARKERS, N_SPECIAL, PAD

#: Logit of a padded (absent) candidate: far below any real logit, yet finite, so softmax,
#: log-softmax and entropy stay free of NaN even for a row with no real candidate.
MASKED_LOGIT = -1e9

#: Per-token output channels of the world-model head (e.g. "appears", "disappears").
WORLD_MODEL_CHANNELS = 2


@dataclass
class ModelConfig:
    """Architecture of :class:`PolicyModel`; stored in every checkpoint."""

    vocab_size: int = 8192
    """Token id space of the hashing tokenizer (special ids included)."""
    d_model: int = 64
    """Width of every embedding and of the state, action and consequence vectors."""
    n_layers: int = 1
    """Transformer encoder layers over the state tokens. One: on expert demos a second layer
    gave no better validation accuracy or test success and half the training speed
    (docs/benchmark/default-model)."""
    n_heads: int = 4
    """Attention heads (state encoder and action-to-state cross-attention); divides d_model."""
    ff_dim: int = 128
    """Hidden width of the transformer feed-forward blocks and of the MLP heads."""
    dropout: float = 0.0
    """Dropout on the transformer's residual branches and in the MLPs. Off by default: on
    CPU drawing the masks adds ~40% to a training step; early stopping regularizes BC."""
    max_state_tokens: int = 256
    """States are cut to this many tokens (``encode_state``'s ``max_tokens``)."""
    max_action_tokens: int = 24
    """Candidate commands are cut to this many tokens (``encode_action``'s ``max_tokens``)."""
    history_len: int = 0
    """Past (observation, command) steps in the state besides the current observation. None by
    default: the past commands (``command_history_len``) carry what the policy used of the
    past; adding the last 4 observations doubled a state's tokens without gaining accuracy
    (docs/benchmark/default-model)."""
    command_history_len: int = 16
    """Past commands in the state (>= history_len): older steps contribute their command
    only, a cheap memory of what the agent has already done (where it has searched)."""
    lookahead: bool = False
    """Look-ahead: also score each command from its outcome, the tokens the world model
    predicts will appear in the next observation (learners may feed observed outcomes)."""
    lookahead_tokens: int = 16
    """Look-ahead: how many of the predicted outcome's most likely tokens the policy reads."""

    def __post_init__(self) -> None:
        problems = []
        if self.vocab_size <= N_SPECIAL:
            problems.append(f"vocab_size must exceed {N_SPECIAL}")
        sizes = ("d_model", "n_layers", "n_heads", "ff_dim", "max_action_tokens")
        for name in (*sizes, "lookahead_tokens"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1")
        if self.n_heads >= 1 and self.d_model % self.n_heads:
            problems.append(f"d_model ({self.d_model}) must be divisible by n_heads")
        if not 0.0 <= self.dropout < 1.0:
            problems.append("dropout must be in [0, 1)")
        if self.max_state_tokens < 4:
            problems.append("max_state_tokens must be >= 4 ([CLS] [GOAL] .. [NOW] ..)")
        if self.history_len < 0:
            problems.append("history_len must be >= 0")
        if self.command_history_len < self.history_len:
            problems.append("command_history_len must be >= history_len")
        if problems:
            raise ValueError(f"invalid ModelConfig({self}): " + "; ".join(problems))

    @property
    def n_segments(self) -> int:
        """State segments: [CLS], goal, current observation, (command, observation) pairs,
        then older commands alone."""
        return 3 + 2 * self.history_len + (self.command_history_len - self.history_len)


class Encoding(NamedTuple):
    """Everything one pass of the encoders computes, for heads that need more than logits."""

    state_tokens: torch.Tensor  # [B, L, d] contextual state token vectors
    state_mask: torch.Tensor  # [B, L] True = real token
    state: torch.Tensor  # [B, d] pooled state vector
    actions: torch.Tensor  # [B, A, d] candidate command vectors
    z: torch.Tensor  # [B, A, d] consequence representation f(state, action)


class Outcome(NamedTuple):
    """What each candidate command does, as the tokens that appear in the next observation
    (the world-model head's channel 0), each with how surely it appears."""

    ids: torch.Tensor  # [B, A, K] token ids; PAD where a command has fewer than K
    weights: torch.Tensor  # [B, A, K] in [0, 1]: 1 observed, a probability predicted, 0 absent


def _attention_mask(state_mask: torch.Tensor) -> torch.Tensor:
    """``[B, 1, 1, L]`` bool, True = may attend; [CLS] always, so a row of pure batch
    padding does not turn into NaN (softmax over nothing)."""
    attend = state_mask.clone()
    attend[:, 0] = True
    return attend[:, None, None, :]


class EncoderLayer(nn.Module):
    """Pre-LN transformer layer on fused-QKV scaled_dot_product_attention.

    Written out rather than ``nn.TransformerEncoderLayer``, which costs ~25% more on CPU
    with a padding mask. Dropout applies to the residual branches only: attention dropout
    pushes SDPA off its fused CPU kernel (attention then runs ~6x slower).
    """

    def __init__(self, d: int, n_heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.ff = _mlp(d, ff_dim, d, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        batch, length, d = x.shape
        q, k, v = (
            self.qkv(self.norm1(x))
            .view(batch, length, 3, self.n_heads, d // self.n_heads)
            .permute(2, 0, 3, 1, 4)
        )
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=attend)
        x = x + self.drop(self.out(h.transpose(1, 2).reshape(batch, length, d)))
        return x + self.drop(self.ff(self.norm2(x)))


class CrossAttention(nn.Module):
    """Each candidate command (query) attends over the state tokens.

    Keys and values are the encoder's output tokens themselves, unprojected: projecting
    every state token again would cost as much as the rest of the action side together.
    """

    def __init__(self, d: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.q = nn.Linear(d, d)
        self.out = nn.Linear(d, d)

    def forward(
        self, queries: torch.Tensor, tokens: torch.Tensor, attend: torch.Tensor
    ) -> torch.Tensor:
        batch, n_q, d = queries.shape
        heads, dh = self.n_heads, d // self.n_heads
        q = self.q(queries).view(batch, n_q, heads, dh).transpose(1, 2)
        kv = tokens.reshape(batch, -1, heads, dh).transpose(1, 2)
        h = F.scaled_dot_product_attention(q, kv, kv, attn_mask=attend)
        return self.out(h.transpose(1, 2).reshape(batch, n_q, d))


def _mlp(d_in: int, d_hidden: int, d_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_in, d_hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_hidden, d_out)
    )


class PolicyModel(nn.Module):
    """Scores candidate commands given a state; see the module docstring."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ModelConfig()
        d = config.d_model
        self.token_emb = nn.Embedding(config.vocab_size, d, padding_idx=PAD)

        # State encoder. Positions count from the start of each segment and a segment
        # embedding says which one (goal, now, k-th past action/observation), so the same
        # sentence looks the same wherever the goal's length pushed it, and recency is explicit.
        self.state_pos_emb = nn.Embedding(config.max_state_tokens, d)
        self.segment_emb = nn.Embedding(config.n_segments, d)
        self.state_layers = nn.ModuleList(
            EncoderLayer(d, config.n_heads, config.ff_dim, config.dropout)
            for _ in range(config.n_layers)
        )
        self.state_norm = nn.LayerNorm(d)
        self.state_pool = nn.Sequential(nn.Linear(2 * d, d), nn.LayerNorm(d))
        self.register_buffer("_markers", torch.tensor(MARKERS), persistent=False)

        # Action encoder. A nonlinearity on (token + position) before pooling keeps word
        # order: a plain mean of token + position embeddings would sum the positions away.
        self.action_pos_emb = nn.Embedding(config.max_action_tokens, d)
        # Whether each command token also occurs in the goal, the current observation or
        # the history (3 bits): lets "take X" generalize to goal objects never seen in
        # training, where an embedding-only match would have to be learned per word.
        self.match_emb = nn.Embedding(8, d)
        self.action_token_mlp = nn.Sequential(nn.Linear(d, d), nn.GELU())
        self.action_out = nn.Sequential(nn.Linear(d, d), nn.LayerNorm(d))

        # Consequence representation: each command attends to the state tokens (which
        # object, where) and is combined with the pooled state.
        self.cross_attn = CrossAttention(d, config.n_heads)
        self.consequence_mlp = _mlp(4 * d, config.ff_dim, d, config.dropout)
        self.consequence_norm = nn.LayerNorm(d)

        self.policy_head = nn.Linear(d, 1)
        self.value_head = _mlp(d, config.ff_dim, 1, config.dropout)

        # World-model head (implicit world modeling). From z it predicts, per token of the
        # vocabulary, WORLD_MODEL_CHANNELS bits about the next observation (what each bit
        # means is the world-model target's choice: learners/world_model.py). Each channel is
        # a query vector scored against the token embeddings (tied output weights, as in
        # language models), so world modeling also shapes the embeddings the policy reads.
        # Built last, so adding it left every other weight's seeded initialization unchanged.
        self.world_model_head = _mlp(d, config.ff_dim, WORLD_MODEL_CHANNELS * d, config.dropout)
        # Start from "this token is rare" (p = 1/vocab), not p = 0.5 for every token, whose loss
        # would otherwise take the first few hundred updates to unlearn.
        prior = -math.log(config.vocab_size)
        self.world_model_bias = nn.Parameter(
            torch.full((WORLD_MODEL_CHANNELS, config.vocab_size), prior)
        )

        # Look-ahead (lookahead_logits). Only with the flag, and built after every other
        # weight: without it the state_dict and every seeded initialization are unchanged.
        if config.lookahead:
            # From z, what to look for among the outcome's tokens (attention with a null slot:
            # "found nothing" is a result too), then a score from z and the outcome summary.
            self.lookahead_query = nn.Linear(d, d)
            self.lookahead_head = _mlp(3 * d + 2, config.ff_dim, 1, config.dropout)

    # -- encoders ---------------------------------------------------------------------------
    def encode_state_tokens(
        self, state_ids: torch.Tensor, state_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Contextual token vectors ``[B, L, d]`` and the pooled state vector ``[B, d]``."""
        cfg = self.config
        batch, length = state_ids.shape
        is_marker = torch.isin(state_ids, self._markers)
        segment = self._segments(is_marker)
        idx = torch.arange(length, device=state_ids.device).expand(batch, length)
        seg_start = torch.where(is_marker, idx, 0).cummax(1).values
        pos = (idx - seg_start).clamp_(max=cfg.max_state_tokens - 1)
        x = self.token_emb(state_ids) + self.state_pos_emb(pos) + self.segment_emb(segment)

        attend = _attention_mask(state_mask)
        for layer in self.state_layers:
            x = layer(x, attend)
        tokens = self.state_norm(x)
        keep = attend[:, 0, 0, :].unsqueeze(-1).to(tokens.dtype)
        mean = (tokens * keep).sum(1) / keep.sum(1)
        state = self.state_pool(torch.cat([tokens[:, 0], mean], dim=-1))
        return tokens, state

    def _segments(self, is_marker: torch.Tensor) -> torch.Tensor:
        # 0 = [CLS], 1 = goal, 2 = current observation, 3.. = history, counted by markers.
        return (is_marker.cumsum(1) - 1).clamp_(0, self.config.n_segments - 1)

    def encode_state(self, state_ids: torch.Tensor, state_mask: torch.Tensor) -> torch.Tensor:
        """The pooled state vector ``[B, d]`` ([CLS] output and masked mean, projected)."""
        return self.encode_state_tokens(state_ids, state_mask)[1]

    def encode_actions(self, action_ids: torch.Tensor, state_ids: torch.Tensor) -> torch.Tensor:
        """Candidate command vectors ``[B, A, d]``; all-PAD (absent) candidates give zeros.

        ``state_ids`` (``[B, L]``) supply the match features: which command tokens also
        occur in the goal, the current observation and the history of the same state.
        """
        batch, n_cands, length = action_ids.shape
        real = action_ids != PAD  # [B, A, T]
        # Work on real tokens only: A and T are padded to batch maxima, mostly PAD.
        pos = torch.arange(length, device=action_ids.device).clamp_(
            max=self.config.max_action_tokens - 1
        )
        pos = pos.expand_as(action_ids)[real]
        owner = torch.arange(batch * n_cands, device=action_ids.device)
        owner = owner.view(batch, n_cands, 1).expand_as(action_ids)[real]
        tokens = action_ids[real]
        h = (
            self.token_emb(tokens)
            + self.action_pos_emb(pos)
            + self.match_emb(self._matches(tokens, owner // n_cands, state_ids))
        )
        h = self.action_token_mlp(h)
        sums = h.new_zeros(batch * n_cands, h.shape[-1]).index_add_(0, owner, h)
        counts = real.sum(-1).view(-1, 1).clamp_(min=1).to(h.dtype)
        present = real.any(-1).view(batch, n_cands, 1).to(h.dtype)
        return self.action_out(sums / counts).view(batch, n_cands, -1) * present

    def _matches(
        self, tokens: torch.Tensor, rows: torch.Tensor, state_ids: torch.Tensor
    ) -> torch.Tensor:
        """3-bit code per command token: in goal (1), in current observation (2), in history (4)."""
        # A [B, 3, vocab] table of which words each state's goal, observation and history
        # hold, then one lookup per command token: linear in the tokens, where comparing
        # every command token with every state token was a third of the action encoder.
        batch, vocab = state_ids.shape[0], self.config.vocab_size
        segment = self._segments(torch.isin(state_ids, self._markers))
        part = segment.clamp(1, 3) - 1  # 0 goal, 1 current observation, 2 history
        word = (state_ids >= N_SPECIAL) & (segment >= 1)
        row = torch.arange(batch, device=state_ids.device).unsqueeze(1).expand_as(state_ids)
        seen = state_ids.new_zeros(batch * 3 * vocab, dtype=torch.bool)
        seen[((row * 3 + part) * vocab + state_ids)[word]] = True
        hits = seen.view(batch, 3, vocab)[rows, :, tokens]  # [N, 3]
        return hits[:, 0].long() + 2 * hits[:, 1].long() + 4 * hits[:, 2].long()

    def encode(self, batch: dict[str, torch.Tensor]) -> Encoding:
        """Run the encoders once; every head reads from the returned :class:`Encoding`."""
        tokens, state = self.encode_state_tokens(batch["state_ids"], batch["state_mask"])
        actions = self.encode_actions(batch["action_ids"], batch["state_ids"])
        context = self.cross_attn(actions, tokens, _attention_mask(batch["state_mask"]))
        s = state.unsqueeze(1).expand_as(actions)
        z = self.consequence_norm(
            self.consequence_mlp(torch.cat([s, actions, s * actions, context], dim=-1))
        )
        return Encoding(tokens, batch["state_mask"], state, actions, z)

    def consequence(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The consequence representation ``z = f(state, action)``, ``[B, A, d]``."""
        return self.encode(batch).z

    # -- heads ------------------------------------------------------------------------------
    def policy_logits(
        self, z: torch.Tensor, action_mask: torch.Tensor, outcome: Outcome | None = None
    ) -> torch.Tensor:
        """Logits ``[B, A]`` from ``z``; absent candidates get :data:`MASKED_LOGIT`.

        With look-ahead, plus :meth:`lookahead_logits` of each command's ``outcome``: the
        given one (a learner's observed outcomes), else the world model's prediction.
        """
        logits = self.policy_head(z).squeeze(-1)
        if self.config.lookahead:
            if outcome is None:
                outcome = self.predicted_outcome(z, action_mask)
            logits = logits + self.lookahead_logits(z, outcome)
        elif outcome is not None:
            raise ValueError("an outcome was given to a model without look-ahead (--lookahead)")
        return logits.masked_fill(~action_mask, MASKED_LOGIT)

    def predicted_outcome(self, z: torch.Tensor, rows: torch.Tensor | None = None) -> Outcome:
        """The world model's outcome of each command: the ``lookahead_tokens`` tokens its
        "appear" channel (channel 0 of :meth:`world_model_logits`) rates most likely, with
        their probabilities. Detached: no gradient flows back into the prediction.

        ``rows`` (``[B, A]`` bool) limits the work to those commands (scoring every token of
        the vocabulary is most of the look-ahead's cost); the others get no tokens.
        """
        with torch.no_grad():
            head, d = self.world_model_head, self.config.d_model
            last = head[-1]
            picked = z if rows is None else z[rows]
            query = F.linear(head[:-1](picked), last.weight[:d], last.bias[:d])  # channel 0
            logits = query @ self.token_emb.weight.T + self.world_model_bias[0]
            top, ids = logits.topk(min(self.config.lookahead_tokens, logits.shape[-1]), dim=-1)
            weights = top.float().sigmoid()
            if rows is None:
                return Outcome(ids, weights)
            all_ids = ids.new_full((*rows.shape, ids.shape[-1]), PAD)
            all_weights = weights.new_zeros(all_ids.shape)
            all_ids[rows], all_weights[rows] = ids, weights
            return Outcome(all_ids, all_weights)

    def lookahead_logits(self, z: torch.Tensor, outcome: Outcome) -> torch.Tensor:
        """The look-ahead score ``[B, A]`` of each command from ``z`` and its ``outcome``.

        The outcome's token embeddings are summarized twice: their weighted mean (what
        appears, and how much: ``log(1 + total weight)``), and an attention read with a
        query from ``z`` whose prior is each token's weight, beside a null slot, so the
        score can tell "this command reveals what I look for" (``found`` near 1) from "it
        reveals nothing I need". A candidate with no outcome tokens reads zeros and nothing
        found, never NaN.
        """
        ids, weights = outcome
        weights = weights.to(z.dtype) * (ids != PAD)
        emb = self.token_emb(ids)  # [B, A, K, d]
        mass = weights.sum(-1, keepdim=True)  # [B, A, 1]
        mean = (weights.unsqueeze(-1) * emb).sum(-2) / mass.clamp(min=1.0)
        query = self.lookahead_query(z)
        match = (emb @ query.unsqueeze(-1)).squeeze(-1) / math.sqrt(z.shape[-1])
        match = (match + weights.clamp(min=1e-6).log()).masked_fill(weights <= 0, -1e4)
        attention = torch.cat([match, match.new_zeros(*match.shape[:-1], 1)], -1).softmax(-1)
        pooled = (attention[..., :-1].unsqueeze(-1) * emb).sum(-2)
        found = 1.0 - attention[..., -1:]
        features = torch.cat([z, mean, pooled, found, torch.log1p(mass)], dim=-1)
        return self.lookahead_head(features).squeeze(-1)

    def world_model_queries(self, z: torch.Tensor) -> torch.Tensor:
        """The world-model head's query vectors ``[..., WORLD_MODEL_CHANNELS, d_model]``: a
        token's logit in a channel is its embedding dotted with the channel's query, plus
        ``world_model_bias``. A loss that needs a channel at a few tokens only reads those."""
        return self.world_model_head(z).unflatten(-1, (WORLD_MODEL_CHANNELS, -1))

    def world_model_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Next-observation token logits ``[..., WORLD_MODEL_CHANNELS, vocab_size]`` from ``z``."""
        return self.world_model_queries(z) @ self.token_emb.weight.T + self.world_model_bias

    def value(self, state: torch.Tensor) -> torch.Tensor:
        """State value ``[B]`` from the pooled state vector."""
        return self.value_head(state).squeeze(-1)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Policy logits ``[B, A]`` (absent candidates masked) and state values ``[B]``."""
        enc = self.encode(batch)
        return self.policy_logits(enc.z, batch["action_mask"]), self.value(enc.state)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
