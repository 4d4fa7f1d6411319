"""Message catalogues: both languages complete, and zh-TW text in Taiwan usage."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import string
from pathlib import Path

import pytest

import lab6.messages
from lab6.i18n import tr
from lab6.messages import MESSAGES

ROOT = Path(__file__).resolve().parents[1]

# Mainland terms written in Traditional characters, with the Taiwan term to use instead.
MAINLAND_TERMS = {
    "代碼": "程式碼",
    "模塊": "模組",
    "數據": "資料",
    "默認": "預設",
    "信息": "訊息 or 資訊",
    "視頻": "影片",
    "軟件": "軟體",
    "文件": "檔案 (a file)",
    "程序": "程式 (a program)",
}
# 文件 (document) and 程序 (procedure) are Taiwan words too; these compounds use them so.
ALLOWED_COMPOUNDS = (
    "說明文件",
    "官方文件",
    "技術文件",
    "參考文件",
    "讀文件",
    "查文件",
    "看文件",
    "作業程序",
    "標準程序",
    "程序化",
)

# Characters that exist only in Simplified Chinese; their Traditional forms differ.
SIMPLIFIED_ONLY = set("这个们数据码块认视频软设为与时说图层记录输边还没载获转换练习题检错误将对请确读写档执运发会来实验训预测试结选择显计类别")


def topic_modules():
    return [
        importlib.import_module(f"lab6.messages.{info.name}")
        for info in pkgutil.iter_modules(lab6.messages.__path__)
    ]


def placeholders(template: str) -> list[tuple[str, str, str]]:
    """Return the sorted (field, conversion, format spec) of every placeholder in ``template``."""
    fields = [
        (name, conversion or "", spec or "")
        for _, name, spec, conversion in string.Formatter().parse(template)
        if name is not None
    ]
    return sorted(fields)


def sample_value(spec: str) -> object:
    """Return a value that a placeholder with format ``spec`` accepts."""
    if spec[-1:] in ("d", "x", "X", "o", "b", "c"):
        return 1
    if spec[-1:] in ("f", "F", "e", "E", "g", "G", "%", "n"):
        return 0.5
    return "X"


def mainland_terms(text: str) -> list[str]:
    """Return the mainland terms and simplified-only characters in ``text``."""
    for compound in ALLOWED_COMPOUNDS:
        text = text.replace(compound, "")
    found = [f"{term} (use {fix})" for term, fix in MAINLAND_TERMS.items() if term in text]
    found += [f"simplified character {char}" for char in sorted(SIMPLIFIED_ONLY & set(text))]
    return found


def test_topics_found():
    names = {module.__name__.rsplit(".", 1)[1] for module in topic_modules()}
    assert "core" in names


@pytest.mark.parametrize("module", topic_modules(), ids=lambda m: m.__name__)
def test_topic_has_same_keys(module):
    assert set(module.ZH_TW) == set(module.EN)


def test_merged_catalogues_have_same_keys():
    assert set(MESSAGES["zh-TW"]) == set(MESSAGES["en"])
    assert len(MESSAGES["en"]) == sum(len(module.EN) for module in topic_modules())


@pytest.mark.parametrize("key", sorted(MESSAGES["en"]))
def test_placeholders_match(key):
    english, chinese = MESSAGES["en"][key], MESSAGES["zh-TW"][key]
    assert placeholders(english) == placeholders(chinese)
    values = {name: sample_value(spec) for name, _, spec in placeholders(english)}
    english.format(**values)  # no stray braces
    chinese.format(**values)


@pytest.mark.parametrize("key", sorted(MESSAGES["zh-TW"]))
def test_chinese_message_uses_taiwan_terms(key):
    assert mainland_terms(MESSAGES["zh-TW"][key]) == []


def test_mainland_term_detector():
    assert mainland_terms("請把數據存成文件") == ["數據 (use 資料)", "文件 (use 檔案 (a file))"]
    assert mainland_terms("這是說明文件") == []
    assert mainland_terms("这个模型") == ["simplified character 个", "simplified character 这"]


def test_tr_selects_language(lang):
    lang("en")
    assert tr("schedule.empty") == MESSAGES["en"]["schedule.empty"]
    lang("zh-TW")
    assert tr("schedule.empty") == MESSAGES["zh-TW"]["schedule.empty"]
    with pytest.raises(KeyError):
        tr("no.such.key")


def chinese_documents() -> list[Path]:
    paths = [ROOT / "README.zh-TW.md"]
    for folder in ("notebooks", "solutions"):
        paths += sorted((ROOT / folder).glob("*.ipynb"))
        paths += sorted((ROOT / folder).glob("*.md"))
    return [path for path in paths if path.exists()]


def markdown_text(path: Path) -> list[tuple[str, str]]:
    """Return (where, text) pairs: the whole file, or each markdown cell of a notebook."""
    if path.suffix != ".ipynb":
        return [(path.name, path.read_text(encoding="utf-8"))]
    notebook = json.loads(path.read_text(encoding="utf-8"))
    cells = []
    for number, cell in enumerate(notebook.get("cells", [])):
        if cell.get("cell_type") == "markdown":
            source = cell.get("source", "")
            text = "".join(source) if isinstance(source, list) else source
            cells.append((f"{path.name} cell {number} ({cell.get('id', '?')})", text))
    return cells


@pytest.mark.parametrize("path", chinese_documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_chinese_documents_use_taiwan_terms(path):
    problems = {where: mainland_terms(re.sub(r"`[^`]*`", "", text)) for where, text in markdown_text(path)}
    assert {where: found for where, found in problems.items() if found} == {}
