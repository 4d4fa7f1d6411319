"""get_real_idx and patch_owner against two independent trackers.

The first tracker follows sets of patch ids through hand-made index sequences with plain
Python lists. The second follows patches through a real timm ViT whose blocks add nothing
to the residual stream. There every token is still its embedded patch, or for a fused
token a weighted sum of patches, so it can be identified by value.
"""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pytest
from lab6.evit import apply_evit, set_keep_rate
from lab6.i18n import Lab6Error
from lab6.index import DROPPED, FUSED, fused_patch_mask, get_real_idx, kept_patch_mask, patch_owner

# A token is ("patch", {p}) while it carries patch p alone, or ("fused", patches).
Token = tuple[str, frozenset]


def follow_tokens(rows: list[list[int]], fuse: bool, num_patches: int) -> list[list[Token]]:
    """Return, for one sample, the non-CLS tokens after each pruning block."""
    tokens: list[Token] = [("patch", frozenset([p])) for p in range(num_patches)]
    history = []
    for row in rows:
        kept = [tokens[j] for j in row]
        rest = [tokens[j] for j in range(len(tokens)) if j not in row]
        tokens = kept
        if fuse:
            tokens = kept + [("fused", frozenset().union(*(members for _, members in rest)))]
        history.append(tokens)
    return history


def expected_real_idx(history: list[list[Token]], widths: list[int]) -> list[list[int]]:
    """Return per step the patch of each kept token, FUSED for a kept fused token."""
    real = []
    for tokens, kept in zip(history, widths):
        real.append([next(iter(members)) if kind == "patch" else FUSED for kind, members in tokens[:kept]])
    return real


def expected_owner(history: list[list[Token]], num_patches: int) -> list[list[int]]:
    """Return per step the position of the token carrying each patch, DROPPED if none."""
    owners = []
    for tokens in history:
        owner = [DROPPED] * num_patches
        for position, (_, members) in enumerate(tokens):
            for patch in members:
                assert owner[patch] == DROPPED, "a patch is in two tokens"
                owner[patch] = position
        owners.append(owner)
    return owners


@st.composite
def index_sequences(draw, max_patches: int = 40, max_steps: int = 4):
    """Draw (num_patches, fuse, [kept_idx [B, K_i] per pruning block]).

    With fusion, some later steps force sample 0 to keep the previous fused token.
    """
    num_patches = draw(st.integers(min_value=2, max_value=max_patches))
    batch = draw(st.integers(min_value=1, max_value=3))
    fuse = draw(st.booleans())
    steps = draw(st.integers(min_value=1, max_value=max_steps))
    idxs = []
    width = num_patches
    for step in range(steps):
        if width < 2:
            break
        kept = draw(st.integers(min_value=1, max_value=width - 1))
        keep_fused = fuse and step > 0 and draw(st.booleans())
        rows = []
        for b in range(batch):
            row = list(draw(st.permutations(range(width)))[:kept])
            if keep_fused and b == 0 and width - 1 not in row:
                row[draw(st.integers(min_value=0, max_value=kept - 1))] = width - 1
            rows.append(row)
        idxs.append(torch.tensor(rows))
        width = kept + (1 if fuse else 0)
    return num_patches, fuse, idxs


@settings(max_examples=150, deadline=None)
@given(case=index_sequences())
def test_get_real_idx_matches_tracker(case):
    num_patches, fuse, idxs = case
    originals = [idx.clone() for idx in idxs]
    real = get_real_idx(idxs, fuse=fuse, num_patches=num_patches)

    assert all(torch.equal(idx, original) for idx, original in zip(idxs, originals))  # no mutation
    assert real[0] is not idxs[0]
    assert torch.equal(real[0], idxs[0])  # the first block's indices pass through
    widths = [idx.shape[1] for idx in idxs]
    for b in range(idxs[0].shape[0]):
        history = follow_tokens([idx[b].tolist() for idx in idxs], fuse, num_patches)
        expected = expected_real_idx(history, widths)
        assert [r[b].tolist() for r in real] == expected
    for r in real:
        assert r.dtype == torch.int64
        for row in r.tolist():
            patches = [p for p in row if p != FUSED]
            assert len(set(patches)) == len(patches)  # kept patches are unique
            assert all(0 <= p < num_patches for p in patches)
        if not fuse:
            assert (r != FUSED).all()


@settings(max_examples=150, deadline=None)
@given(case=index_sequences())
def test_patch_owner_matches_tracker(case):
    num_patches, fuse, idxs = case
    originals = [idx.clone() for idx in idxs]
    owners = patch_owner(idxs, fuse=fuse, num_patches=num_patches)
    real = get_real_idx(idxs, fuse=fuse, num_patches=num_patches)

    assert all(torch.equal(idx, original) for idx, original in zip(idxs, originals))
    for b in range(idxs[0].shape[0]):
        history = follow_tokens([idx[b].tolist() for idx in idxs], fuse, num_patches)
        assert [o[b].tolist() for o in owners] == expected_owner(history, num_patches)
    for owner, idx, r in zip(owners, idxs, real):
        kept = idx.shape[1]
        if fuse:
            # Every patch lives in exactly one token: a kept one or the new fused token.
            assert ((owner >= 0) & (owner <= kept)).all()
        else:
            assert ((owner >= DROPPED) & (owner < kept)).all()
        kept_mask = kept_patch_mask(r, num_patches)
        fused_mask = fused_patch_mask(owner, r, num_patches)
        assert torch.equal(kept_mask.sum(dim=1), (r != FUSED).sum(dim=1))
        assert not (kept_mask & fused_mask).any()
        if fuse:
            assert (kept_mask | fused_mask).all()
        else:
            assert not fused_mask.any()


def test_kept_fused_token_marked():
    # 6 patches, fusion on. Block 1 keeps patches 4 and 1 and fuses {0, 2, 3, 5} at slot 2.
    # Block 2 keeps that fused token first, then patch 1; patch 4 goes into a new fused token.
    first = torch.tensor([[4, 1]])
    second = torch.tensor([[2, 1]])
    real = get_real_idx([first, second], fuse=True, num_patches=6)
    assert real[1].tolist() == [[FUSED, 1]]
    owners = patch_owner([first, second], fuse=True, num_patches=6)
    assert owners[0].tolist() == [[2, 1, 2, 2, 0, 2]]
    assert owners[1].tolist() == [[0, 1, 0, 0, 2, 0]]
    # Block 3 keeps the newest fused token (slot 2) only.
    third = torch.tensor([[2]])
    real = get_real_idx([first, second, third], fuse=True, num_patches=6)
    assert real[2].tolist() == [[FUSED]]
    assert patch_owner([first, second, third], fuse=True, num_patches=6)[2].tolist() == [[1, 1, 1, 1, 0, 1]]


def test_fused_token_never_patch_zero():
    # EViT's reference maps a kept fused token to patch 0; here it must stay FUSED.
    real = get_real_idx([torch.tensor([[3, 1]]), torch.tensor([[2, 0]])], fuse=True, num_patches=4)
    assert real[1].tolist() == [[FUSED, 3]]


def test_empty_sequence():
    assert get_real_idx([], fuse=True) == []
    assert patch_owner([], fuse=True, num_patches=196) == []


@pytest.mark.parametrize("language", ["en", "zh-TW"])
def test_index_out_of_range_rejected(lang, language):
    lang(language)
    # Without fusion the second block receives only 2 tokens, so index 2 is out of range.
    with pytest.raises(Lab6Error) as caught:
        get_real_idx([torch.tensor([[0, 1]]), torch.tensor([[2]])], fuse=False)
    assert caught.value.key == "index.out_of_range"
    assert caught.value.values == {"step": 2, "low": 2, "high": 2, "width": 2}
    with pytest.raises(Lab6Error) as caught:
        get_real_idx([torch.tensor([[0, 196]])], fuse=True, num_patches=196)
    assert caught.value.key == "index.out_of_range"
    assert "196" in str(caught.value)
    with pytest.raises(Lab6Error) as caught:
        patch_owner([torch.tensor([[-1, 0]])], fuse=True, num_patches=4)
    assert caught.value.key == "index.out_of_range"


def test_index_bad_shape_rejected():
    with pytest.raises(Lab6Error) as caught:
        get_real_idx([torch.tensor([0.0, 1.0])], fuse=True, num_patches=4)
    assert caught.value.key == "index.bad_shape"
    with pytest.raises(Lab6Error) as caught:
        patch_owner([torch.tensor([0, 1])], fuse=True, num_patches=4)
    assert caught.value.key == "index.bad_shape"
    assert caught.value.values["shape"] == (2,)


# The real-model tracker


@pytest.fixture(scope="module")
def identity_vit(make_vit):
    """A random ViT whose blocks leave the residual stream unchanged but still rank tokens.

    attn.proj and mlp.fc2 are zero, so each block adds exactly 0 to its input, while q and k
    (hence the CLS attention and the pruning decision) stay random.
    """
    model = make_vit(seed=3)
    with torch.no_grad():
        for block in model.blocks:
            for layer in (block.attn.proj, block.mlp.fc2):
                layer.weight.zero_()
                layer.bias.zero_()
    return apply_evit(model)


def trace_through_model(model, images: torch.Tensor, schedule, fuse: bool):
    """Run ``model`` and return its output, the embedded tokens and each pruning block's tokens.

    The pruned tokens of a block are read at the input of its norm2, before the (zero) MLP.
    """
    set_keep_rate(model, schedule, fuse=fuse)
    captured = {}
    handles = []
    for index, block in enumerate(model.blocks):

        def hook(_module, args, index=index):
            captured[index] = args[0].detach().clone()

        handles.append(block.norm2.register_forward_pre_hook(hook))
    final = {}
    handles.append(model.norm.register_forward_pre_hook(lambda _m, args: final.setdefault("x", args[0].clone())))
    try:
        with torch.inference_mode():
            embedded = model.norm_pre(model._pos_embed(model.patch_embed(images)))  # [B, 197, C]
            output = model.forward_evit(images)
    finally:
        for handle in handles:
            handle.remove()
    pruned = [captured[record.block] for record in output.records]
    return output, embedded, pruned, final["x"]


def check_against_model(output, embedded, pruned, final, fuse):
    """Identify every token of every pruning block's output by value and compare with lab6."""
    idxs = [record.kept_idx for record in output.records]
    originals = [idx.clone() for idx in idxs]
    real = get_real_idx(idxs, fuse=fuse, num_patches=196)
    owners = patch_owner(idxs, fuse=fuse, num_patches=196)
    assert all(torch.equal(idx, original) for idx, original in zip(idxs, originals))
    assert torch.equal(pruned[-1], final)  # blocks after the last pruning one change nothing

    batch = embedded.shape[0]
    patches = embedded[:, 1:].double()  # [B, 196, C]
    for b in range(batch):
        # coef[t] expresses token t as a combination of patch embeddings.
        coef = torch.eye(196, dtype=torch.float64)
        for step, record in enumerate(output.records):
            kept = record.kept_idx[b].tolist()
            dropped = [j for j in range(coef.shape[0]) if j not in set(kept)]
            rows = [coef[j] for j in kept]
            if record.fuse:
                weights = record.cls_attn[b].double()
                rows.append(sum(weights[j] * coef[j] for j in dropped))
            coef = torch.stack(rows)

            tokens = pruned[step][b].double()  # [1 + K (+ 1), C]
            assert torch.allclose(tokens[0], embedded[b, 0].double(), atol=1e-6)  # CLS unchanged
            assert torch.allclose(tokens[1:], coef @ patches[b], atol=1e-4)

            distance = torch.cdist(tokens[1:], patches[b])  # [tokens, 196]
            nearest = distance.min(dim=1)
            for position in range(len(kept)):
                single = (coef[position] == 1).sum() == 1 and (coef[position] != 0).sum() == 1
                if single:
                    assert nearest.values[position] < 1e-4
                    assert real[step][b, position].item() == nearest.indices[position].item()
                else:
                    assert nearest.values[position] > 1e-2  # not any single patch
                    assert real[step][b, position].item() == FUSED
            for patch in range(196):
                carriers = (coef[:, patch] > 0).nonzero().flatten().tolist()
                if carriers:
                    assert carriers == [owners[step][b, patch].item()]
                else:
                    assert not fuse
                    assert owners[step][b, patch].item() == DROPPED


@st.composite
def random_schedules(draw):
    blocks = draw(st.lists(st.integers(min_value=0, max_value=11), min_size=1, max_size=4, unique=True))
    rates = [1.0] * 12
    for block in blocks:
        rates[block] = draw(st.sampled_from([0.2, 0.35, 0.5, 0.55, 0.7, 0.8, 0.9, 0.95]))
    return tuple(rates)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schedule=random_schedules(), fuse=st.booleans(), seed=st.integers(min_value=0, max_value=2**16))
def test_tracker_through_real_model(identity_vit, schedule, fuse, seed):
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(seed))
    output, embedded, pruned, final = trace_through_model(identity_vit, images, schedule, fuse)
    check_against_model(output, embedded, pruned, final, fuse)


@pytest.mark.parametrize("fuse", [True, False], ids=["fuse", "drop"])
def test_tracker_through_real_model_lab_schedule(identity_vit, fuse):
    images = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    output, embedded, pruned, final = trace_through_model(identity_vit, images, "lab", fuse)
    assert [tuple(r.kept_idx.shape) for r in output.records] == [(3, 138), (3, 98 if fuse else 97), (3, 70 if fuse else 68)]
    check_against_model(output, embedded, pruned, final, fuse)


def test_real_model_keeps_fused_token(identity_vit):
    # Rate 0.9 right after a 0.2 prune keeps 90% of the tokens, the fused one among them.
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    schedule = (1, 1, 1, 0.2, 0.9, 0.9, 1, 1, 1, 1, 1, 1)
    output, embedded, pruned, final = trace_through_model(identity_vit, images, schedule, True)
    real = get_real_idx([r.kept_idx for r in output.records], fuse=True, num_patches=196)
    assert (real[1] == FUSED).any(dim=1).all()
    check_against_model(output, embedded, pruned, final, True)


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8, torch.int64])
def test_get_real_idx_any_integer_dtype(dtype):
    idxs = [torch.tensor([[3, 1, 2]], dtype=dtype), torch.tensor([[0, 3]], dtype=dtype)]
    real = get_real_idx(idxs, fuse=True, num_patches=196)
    assert [r.dtype for r in real] == [torch.int64, torch.int64]
    assert real[0].tolist() == [[3, 1, 2]]
    assert real[1].tolist() == [[3, FUSED]]
    owners = patch_owner(idxs, fuse=True, num_patches=4)
    # Patch 0 was not kept, so it lives in the fused token at position K = 3.
    assert owners[0].tolist() == [[3, 1, 2, 0]]


def test_get_real_idx_empty_rows():
    # B = 0 and K = 0 both pass through, with and without num_patches.
    for idxs in ([torch.zeros(0, 5, dtype=torch.long), torch.zeros(0, 3, dtype=torch.long)], [torch.zeros(2, 0, dtype=torch.long)]):
        for num_patches in (None, 196):
            real = get_real_idx(idxs, fuse=True, num_patches=num_patches)
            assert [tuple(r.shape) for r in real] == [tuple(i.shape) for i in idxs]
    owners = patch_owner([torch.zeros(0, 5, dtype=torch.long)], fuse=True, num_patches=196)
    assert owners[0].shape == (0, 196)


def test_index_not_tensor_rejected(lang):
    lang("en")
    for function in (
        lambda idxs: get_real_idx(idxs, fuse=True, num_patches=196),
        lambda idxs: patch_owner(idxs, fuse=True, num_patches=196),
    ):
        with pytest.raises(Lab6Error) as caught:
            function([[3, 1]])
        assert caught.value.key == "index.not_tensor"
        assert caught.value.values == {"step": 1, "kind": "list"}
        assert "list" in str(caught.value)


def test_index_batch_mismatch_rejected(lang):
    lang("en")
    idxs = [torch.tensor([[3, 1]]), torch.tensor([[0], [1]])]
    with pytest.raises(Lab6Error) as caught:
        get_real_idx(idxs, fuse=True, num_patches=196)
    assert caught.value.key == "index.batch_mismatch"
    assert caught.value.values == {"step": 2, "got": 2, "batch": 1}
    with pytest.raises(Lab6Error) as caught:
        patch_owner(idxs, fuse=True, num_patches=196)
    assert caught.value.key == "index.batch_mismatch"


def test_index_bool_and_float_rejected():
    for bad in (torch.tensor([[True, False]]), torch.tensor([[1.0, 2.0]])):
        with pytest.raises(Lab6Error) as caught:
            get_real_idx([bad], fuse=True, num_patches=196)
        assert caught.value.key == "index.bad_shape"
        assert caught.value.values["dtype"] == str(bad.dtype)
