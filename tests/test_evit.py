"""EViT on timm: parity at keep rate 1, the pruning step against a hand-written reference,
the fast attention path, batches, records and unsupported models."""

from __future__ import annotations

import copy
import math
from fractions import Fraction

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.layers import Attention, use_fused_attn
from timm.models.vision_transformer import Block, VisionTransformer

from lab6.evit import EViTOutput, PruneRecord, apply_evit, get_keep_rate, is_evit, set_keep_rate
from lab6.i18n import ModelError, ScheduleError
from lab6.messages import MESSAGES
from lab6.schedule import LAB_SCHEDULE, parse_keep_rate, token_counts

PRUNING_BLOCKS = (3, 6, 9)  # 0-based blocks 4, 7 and 10


def set_fused_attn(model: VisionTransformer, enabled: bool) -> None:
    for block in model.blocks:
        block.attn.fused_attn = enabled


def images(batch: int, seed: int = 0, size: int = 224) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def reference_evit(model: VisionTransformer, x: torch.Tensor, schedule, fuse: bool):
    """Run EViT as "Not All Patches are What You Need" (ICLR 2022) describes it, token by token.

    Uses timm's modules of ``model`` but none of lab6's code. Returns the logits and, per
    pruning block, the kept positions of every sample as lists.
    """
    x = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))
    kept_per_block = []
    for block, rate in zip(model.blocks, schedule):
        batch, tokens, channels = x.shape
        keep = math.ceil(Fraction(str(rate)) * (tokens - 1))
        if keep >= tokens - 1:
            x = Block.forward(block, x)
            continue

        attn = block.attn
        h = block.norm1(x)
        qkv = attn.qkv(h).reshape(batch, tokens, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = attn.q_norm(qkv[0]), attn.k_norm(qkv[1]), qkv[2]
        probs = ((q @ k.transpose(-2, -1)) * attn.head_dim**-0.5).softmax(dim=-1)  # [B, H, N, N]
        out = (probs @ v).transpose(1, 2).reshape(batch, tokens, -1)
        x = x + block.ls1(attn.proj(attn.norm(out)))
        cls_attn = probs[:, :, 0, 1:].mean(dim=1)  # [B, N-1]

        rows, kept_rows = [], []
        for b in range(batch):
            scores = cls_attn[b].tolist()
            order = sorted(range(tokens - 1), key=lambda j: scores[j], reverse=True)
            kept, dropped = order[:keep], sorted(order[keep:])
            parts = [x[b, :1]] + [x[b, 1 + j].unsqueeze(0) for j in kept]
            if fuse:
                fused = torch.zeros(channels)
                for j in dropped:
                    fused = fused + cls_attn[b, j] * x[b, 1 + j]
                parts.append(fused.unsqueeze(0))
            rows.append(torch.cat(parts))
            kept_rows.append(kept)
        x = torch.stack(rows)
        x = x + block.ls2(block.mlp(block.norm2(x)))
        kept_per_block.append(kept_rows)
    return model.forward_head(model.norm(x)), kept_per_block


@pytest.fixture(scope="module")
def timm_models(randomize_vit):
    """DeiT-Ti and DeiT III-S (layer scale) with random, non-trivial weights."""
    models = {}
    for seed, name in enumerate(("deit_tiny_patch16_224", "deit3_small_patch16_224")):
        torch.manual_seed(seed)
        models[name] = randomize_vit(timm.create_model(name, pretrained=False), seed)
    gammas = [p for n, p in models["deit3_small_patch16_224"].named_parameters() if n.endswith("gamma")]
    assert len(gammas) == 24
    assert all(g.std() > 0.1 for g in gammas)  # layer scale is far from timm's 1e-6 init
    return models


@pytest.fixture
def small_vit(make_vit):
    return make_vit(seed=1)


# Parity at keep rate 1


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "explicit"])
@pytest.mark.parametrize("name", ["deit_tiny_patch16_224", "deit3_small_patch16_224"])
def test_keep_one_matches_timm(timm_models, name, fused):
    plain = copy.deepcopy(timm_models[name])
    set_fused_attn(plain, fused)
    evit = apply_evit(copy.deepcopy(plain), keep_rate=1.0)
    x = images(2)
    with torch.inference_mode():
        expected = plain(x)
        output = evit.forward_evit(x)
        called = evit(x)
    assert expected.abs().mean() > 0.1  # random weights give logits of unit scale
    assert torch.allclose(output.logits, expected, atol=1e-5, rtol=0)
    assert torch.allclose(called, expected, atol=1e-5, rtol=0)
    assert output.records == ()
    assert output.token_counts == (197,) * 12


def test_keep_one_after_lab_schedule(small_vit):
    plain = copy.deepcopy(small_vit)
    evit = apply_evit(small_vit)
    set_keep_rate(evit, 1)
    x = images(2)
    with torch.inference_mode():
        assert torch.allclose(evit(x), plain(x), atol=1e-5, rtol=0)


# Pruning against the reference


@pytest.mark.parametrize("fuse", [True, False], ids=["fuse", "drop"])
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "explicit"])
@pytest.mark.parametrize("name", ["deit_tiny_patch16_224", "deit3_small_patch16_224"])
def test_lab_schedule_matches_reference(timm_models, name, fused, fuse):
    model = copy.deepcopy(timm_models[name])
    set_fused_attn(model, fused)
    x = images(2, seed=3)
    with torch.inference_mode():
        expected, expected_kept = reference_evit(model, x, LAB_SCHEDULE, fuse)
        apply_evit(model, LAB_SCHEDULE, fuse=fuse)
        output = model.forward_evit(x)
    assert len(output.records) == 3
    for record, kept in zip(output.records, expected_kept):
        assert record.kept_idx.tolist() == kept
    assert torch.allclose(output.logits, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("fuse", [True, False], ids=["fuse", "drop"])
def test_random_schedule_matches_reference(small_vit, fuse):
    schedule = (1, 0.9, 0.5, 1, 0.8, 0.8, 1, 0.3, 1, 1, 0.95, 0.6)
    x = images(3, seed=5)
    with torch.inference_mode():
        expected, expected_kept = reference_evit(small_vit, x, schedule, fuse)
        output = apply_evit(small_vit, schedule, fuse=fuse).forward_evit(x)
    # Block 11 (rate 0.95) would keep ceil(0.95 * 19) = 19 of its 19 image tokens, so it
    # runs unpruned and leaves no record.
    assert [r.block for r in output.records] == [1, 2, 4, 5, 7, 11]
    for record, kept in zip(output.records, expected_kept):
        assert record.kept_idx.tolist() == kept
    assert torch.allclose(output.logits, expected, atol=1e-4, rtol=1e-4)
    assert list(output.token_counts) == token_counts(schedule, fuse=fuse)


# The fast attention path


def test_pruning_blocks_call_sdpa(small_vit, monkeypatch):
    set_fused_attn(small_vit, True)
    apply_evit(small_vit)
    lengths = []
    original = F.scaled_dot_product_attention

    def spy(q, k, v, *args, **kwargs):
        lengths.append(q.shape[2])
        return original(q, k, v, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    with torch.inference_mode():
        output = small_vit.forward_evit(images(1))
    # Blocks 4, 7 and 10 prune, and each one still runs attention on its full input.
    assert lengths == [197] * 4 + [140] * 3 + [100] * 3 + [72] * 2
    assert len(output.records) == 3


def test_explicit_path_skips_sdpa(small_vit, monkeypatch):
    set_fused_attn(small_vit, False)
    apply_evit(small_vit)
    calls = []
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", lambda *a, **k: calls.append(1))
    with torch.inference_mode():
        output = small_vit.forward_evit(images(1))
    assert calls == []
    assert output.logits.isfinite().all()


def test_fused_attn_never_switched_off(small_vit):
    before_global = use_fused_attn()
    before_blocks = [block.attn.fused_attn for block in small_vit.blocks]
    apply_evit(small_vit)
    with torch.inference_mode():
        small_vit.forward_evit(images(1))
    assert use_fused_attn() == before_global
    assert [block.attn.fused_attn for block in small_vit.blocks] == before_blocks
    fresh = Attention(48, num_heads=3)
    assert fresh.fused_attn == before_global


# Scores, selection and fusion


def capture_inputs(model: VisionTransformer, module_name: str, block_indices) -> tuple[dict, list]:
    """Register forward pre-hooks that store the input of ``blocks[i].<module_name>``."""
    captured, handles = {}, []
    for index in block_indices:
        module = getattr(model.blocks[index], module_name)

        def hook(_module, args, index=index):
            captured[index] = args[0].detach().clone()

        handles.append(module.register_forward_pre_hook(hook))
    return captured, handles


def cls_attn_from_qkv(attn: Attention, qkv: torch.Tensor) -> torch.Tensor:
    """Return softmax(q k^T * scale)[CLS row] averaged over heads, in float32.

    ``qkv`` is the output [B, N, 3C] of ``attn.qkv``; the result is [B, N-1].
    """
    batch, tokens, _ = qkv.shape
    qkv = qkv.reshape(batch, tokens, 3, attn.num_heads, attn.head_dim)
    q = qkv[:, :, 0].transpose(1, 2).float()  # [B, H, N, D]
    k = qkv[:, :, 1].transpose(1, 2).float()
    logits = q @ k.transpose(-2, -1) * attn.head_dim**-0.5  # [B, H, N, N]
    return logits.softmax(dim=-1).mean(dim=1)[:, 0, 1:]  # [B, N-1]


def hand_cls_attn(block: Block, x: torch.Tensor) -> torch.Tensor:
    """Return the CLS attention row [B, N-1] of ``block`` for its input x [B, N, C], by hand."""
    h = block.norm1(x)
    qkv = h @ block.attn.qkv.weight.T + block.attn.qkv.bias  # [B, N, 3C]
    return cls_attn_from_qkv(block.attn, qkv)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "explicit"])
def test_cls_attn_matches_hand_softmax(small_vit, fused):
    set_fused_attn(small_vit, fused)
    apply_evit(small_vit)
    inputs, handles = capture_inputs(small_vit, "norm1", PRUNING_BLOCKS)
    with torch.inference_mode():
        output = small_vit.forward_evit(images(2, seed=7))
        for record in output.records:
            expected = hand_cls_attn(small_vit.blocks[record.block], inputs[record.block])
            assert record.cls_attn.dtype == torch.float32
            assert record.cls_attn.shape == expected.shape
            assert torch.allclose(record.cls_attn, expected, atol=1e-6, rtol=1e-5)
            # The row excludes CLS itself, so it sums to less than 1.
            assert (record.cls_attn.sum(dim=1) < 1).all()
    for handle in handles:
        handle.remove()


def test_cls_attn_float32_under_bf16_autocast(small_vit):
    apply_evit(small_vit)
    inputs, handles = capture_inputs(small_vit, "norm1", PRUNING_BLOCKS)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        output = small_vit.forward_evit(images(2, seed=8))
        qkvs = {i: small_vit.blocks[i].attn.qkv(small_vit.blocks[i].norm1(inputs[i])) for i in PRUNING_BLOCKS}
    with torch.inference_mode():
        expected = {i: cls_attn_from_qkv(small_vit.blocks[i].attn, qkvs[i]) for i in PRUNING_BLOCKS}
    for handle in handles:
        handle.remove()
    assert output.logits.dtype == torch.bfloat16  # autocast really was on
    assert all(qkv.dtype == torch.bfloat16 for qkv in qkvs.values())
    for record in output.records:
        assert record.cls_attn.dtype == torch.float32
        # q and k are bf16 under autocast; the softmax of their float32 copies must match to
        # float32 precision, far below bf16's 4e-3 relative step.
        assert torch.allclose(record.cls_attn, expected[record.block], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("fuse", [True, False], ids=["fuse", "drop"])
def test_selection_and_fused_token(small_vit, fuse):
    apply_evit(small_vit, fuse=fuse)
    before, handles_before = capture_inputs(small_vit, "norm1", PRUNING_BLOCKS)
    after, handles_after = capture_inputs(small_vit, "norm2", PRUNING_BLOCKS)
    with torch.inference_mode():
        output = small_vit.forward_evit(images(2, seed=9))
        for record in output.records:
            block = small_vit.blocks[record.block]
            x_in = before[record.block]
            # Residual stream after attention, through timm's own Attention.forward.
            x_attn = x_in + block.ls1(Attention.forward(block.attn, block.norm1(x_in)))
            x_out = after[record.block]  # the pruned sequence that enters the MLP
            kept_count = record.kept_idx.shape[1]
            for b in range(x_in.shape[0]):
                scores = record.cls_attn[b].tolist()
                order = sorted(range(len(scores)), key=lambda j: scores[j], reverse=True)
                kept = order[:kept_count]
                dropped = sorted(order[kept_count:])
                assert record.kept_idx[b].tolist() == kept
                assert torch.allclose(x_out[b, 0], x_attn[b, 0], atol=1e-5)
                assert torch.allclose(x_out[b, 1 : 1 + kept_count], x_attn[b, [1 + j for j in kept]], atol=1e-5)
                if not fuse:
                    assert record.fused_idx is None
                    assert x_out.shape[1] == 1 + kept_count
                    continue
                assert record.fused_idx[b].tolist() == dropped
                assert x_out.shape[1] == 2 + kept_count
                fused = sum(scores[j] * x_attn[b, 1 + j] for j in dropped)
                assert torch.allclose(x_out[b, -1], fused, atol=1e-5)
    for handle in handles_before + handles_after:
        handle.remove()


def test_fusion_off_counts(small_vit):
    apply_evit(small_vit, fuse=False)
    with torch.inference_mode():
        output = small_vit.forward_evit(images(2))
    assert [output.token_counts[i] for i in PRUNING_BLOCKS] == [139, 98, 69]
    assert [tuple(r.kept_idx.shape) for r in output.records] == [(2, 138), (2, 97), (2, 68)]
    assert [r.fuse for r in output.records] == [False, False, False]
    assert [r.input_has_fused for r in output.records] == [False, False, False]


# Batches


@pytest.mark.parametrize("fuse", [True, False], ids=["fuse", "drop"])
@pytest.mark.parametrize("batch", [1, 2, 3])
def test_batch_matches_single(small_vit, batch, fuse):
    apply_evit(small_vit, fuse=fuse)
    x = images(batch, seed=11)
    with torch.inference_mode():
        together = small_vit.forward_evit(x)
        for b in range(batch):
            alone = small_vit.forward_evit(x[b : b + 1])
            assert torch.allclose(together.logits[b], alone.logits[0], atol=1e-5, rtol=1e-5)
            for joint, single in zip(together.records, alone.records, strict=True):
                assert torch.equal(joint.kept_idx[b], single.kept_idx[0])
                assert torch.allclose(joint.cls_attn[b], single.cls_attn[0], atol=1e-6)
                if fuse:
                    assert torch.equal(joint.fused_idx[b], single.fused_idx[0])


# Records, state dict, settings


def test_records_typed_and_shaped(small_vit):
    apply_evit(small_vit)
    x = images(2)
    with torch.inference_mode():
        output = small_vit.forward_evit(x)
        called = small_vit(x)
    assert isinstance(output, EViTOutput)
    assert all(isinstance(r, PruneRecord) for r in output.records)
    assert output.logits.shape == (2, 10)
    assert torch.allclose(called, output.logits)
    assert [r.block for r in output.records] == [3, 6, 9]
    assert [r.keep_rate for r in output.records] == [0.7, 0.7, 0.7]
    assert [tuple(r.kept_idx.shape) for r in output.records] == [(2, 138), (2, 98), (2, 70)]
    assert [tuple(r.fused_idx.shape) for r in output.records] == [(2, 58), (2, 41), (2, 29)]
    assert [tuple(r.cls_attn.shape) for r in output.records] == [(2, 196), (2, 139), (2, 99)]
    assert [(r.tokens_in, r.tokens_out) for r in output.records] == [(197, 140), (140, 100), (100, 72)]
    assert [r.input_has_fused for r in output.records] == [False, True, True]
    assert all(r.kept_idx.dtype == torch.int64 for r in output.records)
    assert output.token_counts == tuple(token_counts(LAB_SCHEDULE))
    assert [t.shape[1] for t in output.kept_idx] == [138, 98, 70]
    with pytest.raises(AttributeError):
        output.records[0].block = 0  # records are frozen


def test_state_dict_unchanged(small_vit):
    plain = copy.deepcopy(small_vit)
    evit = apply_evit(small_vit)
    before, after = plain.state_dict(), evit.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(before[key], after[key]) for key in before)
    fresh = apply_evit(VisionTransformer(img_size=224, embed_dim=48, depth=12, num_heads=3, num_classes=10))
    fresh.load_state_dict(before, strict=True)
    assert is_evit(evit)
    assert not is_evit(plain)


def test_apply_twice_is_harmless(small_vit):
    once = apply_evit(small_vit, "0.5@2")
    twice = apply_evit(once)
    assert type(twice).__name__ == "EViTVisionTransformer"
    assert type(twice).__mro__.count(VisionTransformer) == 1
    assert get_keep_rate(twice) == tuple(float(r) for r in LAB_SCHEDULE)


def test_set_keep_rate_changes_behaviour(small_vit):
    plain = copy.deepcopy(small_vit)
    model = apply_evit(small_vit)
    x = images(1)
    with torch.inference_mode():
        assert len(model.forward_evit(x).records) == 3

        assert set_keep_rate(model, "0.5@2") == parse_keep_rate("0.5@2")
        assert get_keep_rate(model) == parse_keep_rate("0.5@2")
        output = model.forward_evit(x)
        assert [(r.block, r.kept_idx.shape[1]) for r in output.records] == [(1, 98)]

        set_keep_rate(model, "lab", fuse=False)
        assert [output_count for output_count in model.forward_evit(x).token_counts[3::3]] == [139, 98, 69]

        set_keep_rate(model, 1)
        output = model.forward_evit(x)
        assert output.records == ()
        assert torch.allclose(output.logits, plain(x), atol=1e-5, rtol=0)


def test_set_keep_rate_rejects_bad_rate_unchanged(small_vit):
    model = apply_evit(small_vit)
    with pytest.raises(ScheduleError):
        set_keep_rate(model, 1.5)
    assert get_keep_rate(model) == tuple(float(r) for r in LAB_SCHEDULE)


def test_set_keep_rate_applies_evit(small_vit):
    assert set_keep_rate(small_vit, "0.5@3", fuse=False) == parse_keep_rate("0.5@3")
    assert is_evit(small_vit)
    with torch.inference_mode():
        output = small_vit.forward_evit(images(1))
    assert [r.fuse for r in output.records] == [False]


def test_attention_mask_rejected(small_vit):
    apply_evit(small_vit)
    with pytest.raises(NotImplementedError):
        small_vit(images(1), attn_mask=torch.ones(197, 197, dtype=torch.bool))


# Unsupported models


class CustomBlock(Block):
    pass


class CustomAttention(Attention):
    pass


def tiny_vit(**kwargs) -> VisionTransformer:
    options = dict(img_size=32, patch_size=16, embed_dim=24, depth=3, num_heads=2, num_classes=4)
    options.update(kwargs)
    return VisionTransformer(**options)


def with_custom_block() -> VisionTransformer:
    model = tiny_vit()
    model.blocks[1].__class__ = CustomBlock
    return model


def with_custom_attention() -> VisionTransformer:
    model = tiny_vit()
    model.blocks[2].attn.__class__ = CustomAttention
    return model


UNSUPPORTED = [
    (lambda: tiny_vit(class_token=False, global_pool="avg"), "model.no_cls", {}),
    (lambda: tiny_vit(global_pool="avg"), "model.unsupported_pool", {"pool": "avg"}),
    (lambda: tiny_vit(reg_tokens=4), "model.prefix_tokens", {"count": 5}),
    (lambda: torch.nn.Linear(3, 3), "model.not_vit", {"kind": "Linear"}),
    (with_custom_block, "model.unsupported_block", {"index": 2, "kind": "CustomBlock"}),
    (with_custom_attention, "model.unsupported_block", {"index": 3, "kind": "CustomAttention"}),
]


@pytest.mark.parametrize("language", ["en", "zh-TW"])
@pytest.mark.parametrize(("build", "key", "values"), UNSUPPORTED)
def test_unsupported_model_rejected(lang, language, build, key, values):
    lang(language)
    model = build()
    original_class = type(model)
    with pytest.raises(ModelError) as caught:
        apply_evit(model)
    assert caught.value.key == key
    for name, value in values.items():
        assert caught.value.values[name] == value, name
    assert str(caught.value) == MESSAGES[language][key].format(**caught.value.values)
    assert type(model) is original_class  # nothing was swapped before the check failed


# Input checks and edge batches


def test_empty_batch_runs(small_vit):
    apply_evit(small_vit)
    with torch.no_grad():
        output = small_vit.forward_evit(images(0))
    assert output.logits.shape == (0, 10)
    assert output.token_counts == tuple(token_counts(LAB_SCHEDULE))
    assert [tuple(r.kept_idx.shape) for r in output.records] == [(0, 138), (0, 98), (0, 70)]


BAD_INPUTS = [
    (lambda: images(1)[0], "model.input_shape", {"shape": (3, 224, 224), "channels": 3, "height": 224, "width": 224}),
    (lambda: torch.randn(1, 1, 224, 224), "model.input_shape", {"shape": (1, 1, 224, 224)}),
    (lambda: images(1, size=256), "model.input_shape", {"shape": (1, 3, 256, 256)}),
    (lambda: torch.zeros(1, 3, 224, 224, dtype=torch.uint8), "model.input_not_float", {"dtype": "torch.uint8"}),
    (lambda: images(1).double(), "model.input_dtype", {"dtype": "torch.float64", "model_dtype": "torch.float32"}),
    (lambda: [images(1)[0]], "model.input_not_tensor", {"kind": "list"}),
]


@pytest.mark.parametrize("language", ["en", "zh-TW"])
@pytest.mark.parametrize(("make_input", "key", "values"), BAD_INPUTS)
def test_bad_input_rejected(small_vit, lang, language, make_input, key, values):
    lang(language)
    apply_evit(small_vit)
    for run in (small_vit.forward_evit, small_vit):
        with pytest.raises(ModelError) as caught:
            run(make_input())
        assert caught.value.key == key
        for name, value in values.items():
            assert caught.value.values[name] == value, name
        assert str(caught.value) == MESSAGES[language][key].format(**caught.value.values)


def test_half_model_runs_on_cpu(small_vit):
    apply_evit(small_vit.half())
    with torch.no_grad():
        output = small_vit.forward_evit(images(1).half())
    assert output.logits.dtype == torch.float16
    assert output.records[0].cls_attn.dtype == torch.float32
    assert output.token_counts == tuple(token_counts(LAB_SCHEDULE))
    with pytest.raises(ModelError) as caught:
        small_vit.forward_evit(images(1))
    assert caught.value.key == "model.input_dtype"
