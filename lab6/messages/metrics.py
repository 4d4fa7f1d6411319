"""Text of the metric tables that notebook 5 prints: format_metrics and the sweep's format_table.

The sweep's column names stay short ASCII abbreviations so the columns line up in any font;
the legend line explains them in the user's language.
"""

ZH_TW = {
    "metrics.fusion_on": "開啟",
    "metrics.fusion_off": "關閉",
    "metrics.summary": "排程 {schedule}，fusion {fusion}，{scenes} 張場景：準確率 {accuracy:.1%}，物體佔比 {share:.1%}",
    "metrics.block": "  第 {block:2d} 個 block 之後：保留 {kept:5.1f} 個 patch，foreground retention {retention:.1%}，object recall {recall:.1%}（隨機挑選 {random:.1%}）",
    "sweep.summary": "{scenes} 張場景，fusion {fusion}，物體佔比 {share:.1%}；不剪枝：{gflops:.3f} GFLOPs，準確率 {accuracy:.1%}",
    "sweep.legend": "欄位：rate = keep rate，ratio = 相對不剪枝的 FLOPs，acc = 準確率，agree = 和不剪枝預測一致的比例，ret@b / rec@b = 第 b 個 block 之後的 foreground retention / object recall",
}

EN = {
    "metrics.fusion_on": "on",
    "metrics.fusion_off": "off",
    "metrics.summary": "schedule {schedule}, fusion {fusion}, {scenes} scenes: accuracy {accuracy:.1%}, object share {share:.1%}",
    "metrics.block": "  block {block:2d}: kept {kept:5.1f} patches, retention {retention:.1%}, recall {recall:.1%} (random {random:.1%})",
    "sweep.summary": "{scenes} scenes, fusion {fusion}, object share {share:.1%}, unpruned: {gflops:.3f} GFLOPs, accuracy {accuracy:.1%}",
    "sweep.legend": "columns: rate = keep rate, ratio = FLOPs relative to unpruned, acc = accuracy, agree = agreement with the unpruned predictions, ret@b / rec@b = foreground retention / object recall after block b",
}
