"""The graded checks pass on reference answers and fail, with their own message, on typical mistakes."""

from __future__ import annotations

import math
import string
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F

from lab6.checks import (
    CheckFailed,
    check_add_cls_pos,
    check_cls_attention,
    check_fuse,
    check_get_real_idx,
    check_num_keep,
    check_patch_embed,
    check_patchify,
    check_token_counts,
    check_topk_select,
    run_hidden,
)
from lab6.checks.items import ITEMS, ITEMS_BY_ID, TOTAL_POINTS, exercise_points
from lab6.index import FUSED

# --- reference answers, written independently of lab6.checks --------------------------------


def patchify(images, patch_size=16):
    return F.unfold(images, kernel_size=patch_size, stride=patch_size).transpose(1, 2)


def patch_embed_as_linear(images, weight, bias):
    return patchify(images, weight.shape[-1]) @ weight.reshape(weight.shape[0], -1).T + bias


def add_cls_and_pos(patch_tokens, cls_token, pos_embed):
    cls = cls_token.expand(patch_tokens.shape[0], -1, -1)
    return torch.cat([cls, patch_tokens], dim=1) + pos_embed


def cls_attention(attn):
    return attn[:, :, 0, 1:].mean(dim=1)


def num_keep(keep_rate, num_tokens):
    return math.ceil(Fraction(str(keep_rate)) * (num_tokens - 1))


def topk_select(cls_attn, keep_rate):
    return cls_attn.topk(num_keep(keep_rate, cls_attn.shape[1] + 1), dim=1).indices


def fuse_tokens(tokens, cls_attn, kept_idx):
    channels = tokens.shape[-1]
    kept = tokens.gather(1, kept_idx.unsqueeze(-1).expand(-1, -1, channels))
    weights = cls_attn.clone()
    weights.scatter_(1, kept_idx, 0.0)
    fused = (tokens * weights.unsqueeze(-1)).sum(dim=1, keepdim=True)
    return torch.cat([kept, fused], dim=1)


def token_counts(schedule, num_patches=196, fuse=True):
    tokens, counts = num_patches + 1, []
    for rate in schedule:
        kept = num_keep(rate, tokens)
        if kept < tokens - 1:
            tokens = 1 + kept + int(fuse)
        counts.append(tokens)
    return counts


def get_real_idx(idxs, fuse):
    real = [idxs[0].clone()]
    for idx in idxs[1:]:
        previous = real[-1]
        if fuse:
            previous = torch.cat([previous, torch.full_like(previous[:, :1], FUSED)], dim=1)
        real.append(previous.gather(1, idx))
    return real


CHECKS = [
    ("patchify", check_patchify, patchify),
    ("patch_embed", check_patch_embed, patch_embed_as_linear),
    ("add_cls_pos", check_add_cls_pos, add_cls_and_pos),
    ("cls_attention", check_cls_attention, cls_attention),
    ("num_keep", check_num_keep, num_keep),
    ("topk_select", check_topk_select, topk_select),
    ("fuse", check_fuse, fuse_tokens),
    ("token_counts", check_token_counts, token_counts),
    ("get_real_idx", check_get_real_idx, get_real_idx),
]


@pytest.fixture(params=["zh-TW", "en"])
def lang(request, monkeypatch):
    monkeypatch.setenv("LAB6_LANG", "en" if request.param == "en" else "zh-TW")
    return request.param


def failure(check, fn) -> CheckFailed:
    with pytest.raises(CheckFailed) as info:
        check(fn)
    return info.value


# --- the reference passes, public and hidden ------------------------------------------------


@pytest.mark.parametrize("item, check, reference", CHECKS, ids=[c[0] for c in CHECKS])
def test_reference_passes_public(item, check, reference, lang, capsys):
    check(reference)
    out = capsys.readouterr().out
    assert item in out
    assert ("公開檢查通過" in out) if lang == "zh-TW" else ("Public check passed" in out)


@pytest.mark.parametrize("item, check, reference", CHECKS, ids=[c[0] for c in CHECKS])
def test_reference_passes_hidden(item, check, reference, capsys):
    run_hidden(item, reference)
    assert f"{item}.hidden" in capsys.readouterr().out


def test_pass_message_names_no_grade(capsys, monkeypatch):
    for language in ("zh-TW", "en"):
        monkeypatch.setenv("LAB6_LANG", language)
        check_patchify(patchify)
        out = capsys.readouterr().out
        for word in ("分數", "points", "grade:", "滿分", "100"):
            assert word not in out


# --- typical wrong answers and their messages ----------------------------------------------


def test_real_idx_without_shift(lang):
    exc = failure(check_get_real_idx, lambda idxs, fuse: [i.clone() for i in idxs])
    assert exc.key == "checks.real_idx.no_shift"
    assert exc.values["step"] == 2
    assert ("相對於上一個 block" in str(exc)) if lang == "zh-TW" else ("previous block's output" in str(exc))


def test_real_idx_fused_padded_with_patch_zero(lang):
    def evit_reference(idxs, fuse):  # EViT's original: pads the fused slot with patch 0
        real = [idxs[0].clone()]
        for idx in idxs[1:]:
            previous = torch.cat([real[-1], torch.zeros_like(real[-1][:, :1])], dim=1) if fuse else real[-1]
            real.append(previous.gather(1, idx))
        return real

    exc = failure(check_get_real_idx, evit_reference)
    assert exc.key == "checks.real_idx.fused_to_patch"
    assert exc.values["value"] == 0
    assert ("FUSED（-1）" in str(exc)) if lang == "zh-TW" else ("must be marked FUSED (-1)" in str(exc))


def test_real_idx_clamped_onto_last_patch(lang):
    def clamped(idxs, fuse):
        real = [idxs[0].clone()]
        for idx in idxs[1:]:
            real.append(real[-1].gather(1, idx.clamp(max=real[-1].shape[1] - 1)))
        return real

    exc = failure(check_get_real_idx, clamped)
    assert exc.key == "checks.real_idx.fused_to_patch"
    assert exc.values["value"] == 3  # the last kept patch of the first block, 3 in the public case
    assert "patch 3" in str(exc)


def test_real_idx_mutating_input():
    def overwrites(idxs, fuse):  # EViT's reference overwrites the list it is given
        for i in range(1, len(idxs)):
            previous = idxs[i - 1]
            if fuse:
                previous = torch.cat([previous, torch.full_like(previous[:, :1], FUSED)], dim=1)
            idxs[i] = previous.gather(1, idxs[i])
        return idxs

    assert failure(check_get_real_idx, overwrites).key == "checks.real_idx.list_mutated"


def test_real_idx_in_place_tensor_change():
    def in_place(idxs, fuse):
        idxs[0].add_(0)
        real = get_real_idx(idxs, fuse)
        idxs[1][0, 0] = 0
        return real

    assert failure(check_get_real_idx, in_place).key == "checks.real_idx.mutated"


def test_real_idx_composed_backwards():
    def backwards(idxs, fuse):  # indexes the new indices with the old ones
        real = [idxs[0].clone()]
        for idx in idxs[1:]:
            real.append(idx.gather(1, real[-1][:, : idx.shape[1]].clamp(max=idx.shape[1] - 1)))
        return real

    exc = failure(check_get_real_idx, backwards)
    assert exc.key == "checks.real_idx.mismatch"  # a wrong lookup, not a padding problem


def _chain(idxs, fuse, table_of, shift=0):
    """A get_real_idx that looks up ``idx + shift`` in ``table_of(real, idxs, i)``, padded like the correct answer."""
    real = [idxs[0].clone()]
    for i, idx in enumerate(idxs[1:], start=1):
        table = table_of(real, idxs, i)
        if fuse:
            table = torch.cat([table, torch.full_like(table[:, :1], FUSED)], dim=1)
        real.append(table[torch.arange(idx.shape[0]).unsqueeze(1), idx + shift])
    return real


def test_real_idx_subtracting_one(lang):
    def minus_one(idxs, fuse):  # treats position 0 as the CLS token; -1 wraps to the fused slot
        return _chain(idxs, fuse, lambda real, raw, i: real[-1], shift=-1)

    exc = failure(check_get_real_idx, minus_one)
    assert exc.key == "checks.real_idx.off_by_one"
    assert exc.values["step"] == 2
    assert "FUSED" not in str(exc)


def test_real_idx_chaining_raw_indices(lang):
    def raw_previous(idxs, fuse):  # looks up the previous block's raw indices, not its patch ids
        return _chain(idxs, fuse, lambda real, raw, i: raw[i - 1])

    exc = failure(check_get_real_idx, raw_previous)
    assert exc.key == "checks.real_idx.raw_previous"
    assert exc.values["step"] == 3  # block 2 looks up block 1, whose raw indices are patch ids
    assert "FUSED" not in str(exc)


def test_real_idx_pad_with_zero_is_fused_bug(lang):
    def pad_zero(idxs, fuse):  # EViT's reference pads with patch 0
        real = [idxs[0].clone()]
        for idx in idxs[1:]:
            table = torch.cat([real[-1], torch.zeros_like(real[-1][:, :1])], dim=1) if fuse else real[-1]
            real.append(table.gather(1, idx))
        return real

    exc = failure(check_get_real_idx, pad_zero)
    assert exc.key == "checks.real_idx.fused_to_patch"
    assert exc.values["value"] == 0


def test_real_idx_tensor_instead_of_list(lang):
    def stacked(idxs, fuse):
        return torch.cat(get_real_idx(idxs, fuse), dim=1)

    exc = failure(check_get_real_idx, stacked)
    assert exc.key == "checks.real_idx.not_list"
    assert "Tensor" in str(exc)
    assert "長度 -" not in str(exc)
    assert "length -" not in str(exc)


def test_real_idx_hidden_catches_batch_mixup():
    def first_row_only(idxs, fuse):  # right for B = 1, wrong when rows differ
        real = get_real_idx([i[:1] for i in idxs], fuse)
        return [r.expand(i.shape[0], -1).clone() for r, i in zip(real, idxs)]

    check_get_real_idx(first_row_only)  # passes the public check, which has B = 1
    with pytest.raises(CheckFailed) as info:
        run_hidden("get_real_idx", first_row_only)
    assert info.value.item == "get_real_idx.hidden"
    assert info.value.key == "checks.real_idx.samples_mixed"
    assert "樣本混在一起" in str(info.value) or "mixed up" in str(info.value)


def test_num_keep_floor(lang):
    exc = failure(check_num_keep, lambda r, n: math.floor(r * (n - 1)))
    assert exc.key == "checks.num_keep.floor"
    assert ("floor" in str(exc))


def test_num_keep_counts_cls():
    exc = failure(check_num_keep, lambda r, n: math.ceil(Fraction(str(r)) * n))
    assert exc.key == "checks.num_keep.counted_cls"
    assert (exc.values["keep_rate"], exc.values["tokens"], exc.values["got"]) == (0.5, 11, 6)


def test_num_keep_round_and_float():
    assert failure(check_num_keep, lambda r, n: round(r * (n - 1))).key == "checks.num_keep.round"
    assert failure(check_num_keep, lambda r, n: float(num_keep(r, n))).key == "checks.num_keep.not_int"


def test_num_keep_float_trap_is_hidden_only(lang):
    naive = lambda r, n: math.ceil(r * (n - 1))  # noqa: E731
    check_num_keep(naive)
    with pytest.raises(CheckFailed) as info:
        run_hidden("num_keep", naive)
    assert info.value.key == "checks.num_keep.float_error"
    assert info.value.values["got"] == 56
    text = str(info.value)
    for hidden_input in ("55.00000000000001", "0.55", "101", "56"):
        assert hidden_input not in text
    assert "ceil" in text


def _input_placeholders(template):
    safe = {"item", "detail", "kind", "dtype", "name", "error", "argument", "what", "meaning", "var", "path", "known", "dotted"}
    return {field for _, field, _, _ in string.Formatter().parse(template) if field} - safe


def test_hidden_variants_name_no_inputs():
    from lab6.messages import MESSAGES

    for lang_name, catalogue in MESSAGES.items():
        for key, template in catalogue.items():
            if not key.startswith("checks.") or key.endswith(".hidden") or not _input_placeholders(template):
                continue
            variant = catalogue.get(f"{key}.hidden")
            assert variant is not None, f"{lang_name}: {key} names inputs but has no .hidden variant"
            assert not _input_placeholders(variant), f"{lang_name}: {key}.hidden"


@pytest.mark.parametrize(
    "item, wrong",
    [
        ("num_keep", lambda r, n: math.floor(r * (n - 1))),
        ("cls_attention", lambda a: a[:, 0, 0, 1:]),
        ("topk_select", lambda a, r: a.topk(math.floor(r * a.shape[1]), dim=1).indices),
    ],
)
def test_hidden_failure_hides_inputs(lang, item, wrong):
    with pytest.raises(CheckFailed) as info:
        run_hidden(item, wrong)
    text = str(info.value)
    for hidden_input in ("keep_rate=", "N=", "196", "197", "0.7", "0.3", "6 個 head", "6 heads", "共 "):
        assert hidden_input not in text, text


def test_topk_floor(lang):
    def floor_topk(cls_attn, keep_rate):
        return cls_attn.topk(math.floor(keep_rate * cls_attn.shape[1]), dim=1).indices

    exc = failure(check_topk_select, floor_topk)
    assert exc.key == "checks.topk.floor"
    assert exc.values["got"] == 4
    assert "floor" in str(exc)


def test_topk_smallest_and_order():
    smallest = lambda a, r: a.topk(num_keep(r, a.shape[1] + 1), dim=1, largest=False).indices  # noqa: E731
    assert failure(check_topk_select, smallest).key == "checks.topk.smallest"
    ascending = lambda a, r: topk_select(a, r).sort(dim=1).values  # noqa: E731
    assert failure(check_topk_select, ascending).key == "checks.topk.order"


def test_topk_wrong_dimension():
    def pooled_over_batch(cls_attn, keep_rate):  # one ranking for the whole batch
        keep = num_keep(keep_rate, cls_attn.shape[1] + 1)
        return cls_attn.sum(dim=0).topk(keep).indices.expand(cls_attn.shape[0], -1)

    exc = failure(check_topk_select, pooled_over_batch)
    assert exc.key == "checks.topk.wrong_set"


def test_cls_attention_forgot_head_average(lang):
    exc = failure(check_cls_attention, lambda attn: attn[:, :, 0, 1:].sum(dim=1))
    assert exc.key == "checks.cls_attention.head_sum"
    exc = failure(check_cls_attention, lambda attn: attn[:, 0, 0, 1:])
    assert exc.key == "checks.cls_attention.one_head"
    exc = failure(check_cls_attention, lambda attn: attn[:, :, 0, 1:])
    assert exc.key == "checks.cls_attention.no_head_mean"
    assert ("平均" in str(exc)) if lang == "zh-TW" else ("averaged" in str(exc))


def test_cls_attention_other_mistakes():
    assert failure(check_cls_attention, lambda a: a[:, :, 0].mean(1)).key == "checks.cls_attention.kept_cls"
    assert failure(check_cls_attention, lambda a: a[:, :, 1:, 0].mean(1)).key == "checks.cls_attention.column"
    renorm = lambda a: cls_attention(a) / cls_attention(a).sum(1, keepdim=True)  # noqa: E731
    assert failure(check_cls_attention, renorm).key == "checks.cls_attention.renormalized"


def test_cls_attention_mutating_input():
    def in_place(attn):
        out = attn[:, :, 0, 1:].mean(dim=1)
        attn.zero_()
        return out

    assert failure(check_cls_attention, in_place).key == "checks.mutated"


def test_fuse_mistakes(lang):
    def renormalized(tokens, cls_attn, kept_idx):
        out = fuse_tokens(tokens, cls_attn, kept_idx)
        weights = cls_attn.clone().scatter_(1, kept_idx, 0.0).sum(1)
        return torch.cat([out[:, :-1], out[:, -1:] / weights.view(-1, 1, 1)], dim=1)

    exc = failure(check_fuse, renormalized)
    assert exc.key == "checks.fuse.renormalized"
    assert ("正規化" in str(exc)) if lang == "zh-TW" else ("renormalise" in str(exc))

    assert failure(check_fuse, lambda t, a, k: fuse_tokens(t, torch.ones_like(a), k)).key == "checks.fuse.unweighted"
    assert failure(check_fuse, lambda t, a, k: fuse_tokens(t, a, k)[:, :-1]).key == "checks.fuse.no_fused"
    flipped = lambda t, a, k: fuse_tokens(t, a, k).roll(1, dims=1)  # noqa: E731
    assert failure(check_fuse, flipped).key == "checks.fuse.fused_first"
    sorted_kept = lambda t, a, k: fuse_tokens(t, a, k.sort(dim=1).values)  # noqa: E731
    assert failure(check_fuse, sorted_kept).key == "checks.fuse.kept_order"

    def everything(tokens, cls_attn, kept_idx):
        out = fuse_tokens(tokens, cls_attn, kept_idx)
        return torch.cat([out[:, :-1], (tokens * cls_attn.unsqueeze(-1)).sum(1, keepdim=True)], dim=1)

    assert failure(check_fuse, everything).key == "checks.fuse.included_kept"


def test_token_counts_mistakes(lang):
    def floor_counts(schedule, num_patches=196, fuse=True):
        tokens, counts = num_patches + 1, []
        for rate in schedule:
            kept = math.floor(rate * (tokens - 1))
            if kept < tokens - 1:
                tokens = 1 + kept + int(fuse)
            counts.append(tokens)
        return counts

    exc = failure(check_token_counts, floor_counts)
    assert exc.key == "checks.token_counts.floor"
    assert exc.values["block"] == 4 and exc.values["got"] == 139

    def every_block(schedule, num_patches=196, fuse=True):
        tokens, counts = num_patches + 1, []
        for rate in schedule:
            tokens = 1 + num_keep(rate, tokens) + int(fuse)
            counts.append(tokens)
        return counts

    exc = failure(check_token_counts, every_block)
    assert exc.key == "checks.token_counts.every_block"
    assert exc.values["block"] == 1

    no_fused = lambda s, p=196, fuse=True: token_counts(s, p, False)  # noqa: E731
    assert failure(check_token_counts, no_fused).key == "checks.token_counts.no_fused_token"
    always_fused = lambda s, p=196, fuse=True: token_counts(s, p, True)  # noqa: E731
    assert failure(check_token_counts, always_fused).key == "checks.token_counts.fused_when_off"


def test_token_counts_fused_not_counted():
    def image_only(schedule, num_patches=196, fuse=True):
        tokens, image, counts = num_patches + 1, num_patches, []
        for rate in schedule:
            kept = math.ceil(Fraction(str(rate)) * image)
            if kept < image:
                image = kept
                tokens = 1 + kept + int(fuse)
            counts.append(tokens)
        return counts

    assert failure(check_token_counts, image_only).key == "checks.token_counts.fused_not_counted"


def test_patchify_mistakes(lang):
    def column_major(images, patch_size=16):
        return patchify(images.transpose(2, 3), patch_size)

    exc = failure(check_patchify, lambda x, p=16: patchify(x, p).reshape(x.shape[0], -1, x.shape[1], p * p).transpose(2, 3).reshape(x.shape[0], -1, x.shape[1] * p * p))
    assert exc.key == "checks.patchify.channels_last"
    exc = failure(check_patchify, lambda x, p=16: _column_major(x, p))
    assert exc.key == "checks.patchify.column_major"
    assert ("row-major" in str(exc))
    exc = failure(check_patchify, lambda x, p=16: patchify(x, p).transpose(1, 2))
    assert exc.key == "checks.bad_shape"


def _column_major(images, patch):
    rows, cols = images.shape[2] // patch, images.shape[3] // patch
    out = patchify(images, patch)
    order = [r * cols + c for c in range(cols) for r in range(rows)]
    return out[:, order]


def test_patch_embed_and_cls_mistakes():
    no_bias = lambda x, w, b: patch_embed_as_linear(x, w, torch.zeros_like(b))  # noqa: E731
    assert failure(check_patch_embed, no_bias).key == "checks.patch_embed.no_bias"
    swapped = lambda x, w, b: patch_embed_as_linear(x, w.transpose(2, 3), b)  # noqa: E731
    assert failure(check_patch_embed, swapped).key == "checks.patch_embed.weight_order"
    no_cls = lambda t, c, p: t + p[:, 1:]  # noqa: E731
    assert failure(check_add_cls_pos, no_cls).key == "checks.add_cls_pos.no_cls"
    last = lambda t, c, p: torch.cat([t, c.expand(t.shape[0], -1, -1)], 1) + p  # noqa: E731
    assert failure(check_add_cls_pos, last).key == "checks.add_cls_pos.cls_last"
    no_pos = lambda t, c, p: torch.cat([c.expand(t.shape[0], -1, -1), t], 1)  # noqa: E731
    assert failure(check_add_cls_pos, no_pos).key == "checks.add_cls_pos.no_pos"
    cls_bare = lambda t, c, p: torch.cat([c.expand(t.shape[0], -1, -1), t + p[:, 1:]], 1)  # noqa: E731
    assert failure(check_add_cls_pos, cls_bare).key == "checks.add_cls_pos.cls_without_pos"


def test_unfinished_and_crashing(lang):
    def todo(*args):
        raise NotImplementedError("TODO")

    exc = failure(check_fuse, todo)
    assert exc.key == "checks.not_implemented"
    assert ("還沒有完成" in str(exc)) if lang == "zh-TW" else ("not done yet" in str(exc))

    def crashes(images, patch_size=16):
        return images.view(-1, 7)

    exc = failure(check_patchify, crashes)
    assert exc.key == "checks.raised"
    assert "RuntimeError" in str(exc)
    assert failure(check_patchify, 3).key == "checks.not_callable"


def test_failure_renders_without_traceback():
    exc = failure(check_num_keep, lambda r, n: math.floor(r * (n - 1)))
    lines = exc._render_traceback_()
    assert lines == [str(exc)]
    assert "Traceback" not in lines[0]


def test_messages_hide_expected_values(monkeypatch):
    """A failure message states the student's value, never the expected one."""
    monkeypatch.setenv("LAB6_LANG", "en")
    exc = failure(check_num_keep, lambda r, n: math.floor(r * (n - 1)))
    assert exc.values["got"] == 137
    assert "138" not in str(exc)


def test_items_table():
    assert TOTAL_POINTS == 100
    public = [i for i in ITEMS if i.kind == "public"]
    assert {i.id for i in public} == {c[0] for c in CHECKS}
    for item in public:
        assert ITEMS_BY_ID[f"{item.id}.hidden"].kind == "hidden"
        assert item.function
    assert [i.id for i in ITEMS if i.kind == "report"] == ["q1", "q2", "q3", "q4"]
    assert exercise_points("get_real_idx") == 15


def test_private_hidden_checks_override(tmp_path, monkeypatch, capsys):
    private = tmp_path / "private.py"
    private.write_text(
        "from lab6.checks.selection import verify_num_keep\n"
        "HIDDEN_CHECKS = {'num_keep': lambda fn: verify_num_keep(fn, [(0.25, 9)], 'num_keep.hidden')}\n"
    )
    monkeypatch.setenv("LAB6_HIDDEN_CHECKS", str(private))
    with pytest.raises(CheckFailed) as info:
        run_hidden("num_keep.hidden", lambda r, n: 99)
    assert (info.value.values["keep_rate"], info.value.values["tokens"], info.value.values["got"]) == (0.25, 9, 99)
    run_hidden("fuse", fuse_tokens)  # exercises absent from the file keep the shipped checks
    assert "fuse.hidden" in capsys.readouterr().out


def test_private_hidden_checks_missing_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB6_HIDDEN_CHECKS", str(tmp_path / "nowhere.py"))
    with pytest.raises(Exception) as info:
        run_hidden("fuse", fuse_tokens)
    assert info.value.key == "checks.hidden_file_missing"
