"""Messages of the trusted re-checks: the worker process, and calls of lab6's reference implementations."""

ZH_TW = {
    "isolation.reference_call": "你的函式呼叫了 lab6 內建的參考實作 {name}（{dotted}）。這一題要自己寫出計算；lab6 的其他名稱（例如 FUSED）可以照常使用。",
    "isolation.reason.timeout": "評分用的隔離行程執行 {name} 超過 {seconds} 秒（可能是無窮迴圈），已中止。",
    "isolation.reason.died": "評分用的隔離行程在執行 {name} 時結束了（{cause}）。",
    "isolation.reason.too_large": "{name} 傳回的資料超過 {megabytes} MiB，評分程式不接受。",
    "isolation.reason.unsafe_reply": "評分程式拒絕了 {name} 傳回的資料：裡面有 tensor、數字、字串、list、tuple、dict 以外的物件。",
    "isolation.reason.unsendable": "{name} 的結果無法傳回評分程式（{kind}）。請傳回 tensor、數字或它們組成的 list、tuple。",
    "isolation.reason.gave_up": "評分用的隔離行程已重新啟動 {starts} 次仍失敗，這題沒有評分。",
    "isolation.what.load": "作答儲存格的 import 與定義",
    "isolation.hint.definitions_only": "（評分時只會執行作答儲存格裡的 import、函式與類別定義和常數設定；函式用到的其他變數請改成參數，或在函式裡建立。）",
}

EN = {
    "isolation.reference_call": "Your function calls lab6's own reference implementation {name} ({dotted}). Write this computation yourself; lab6's other names (such as FUSED) are fine to use.",
    "isolation.reason.timeout": "The grader's isolated process ran {name} for more than {seconds} s (an infinite loop?) and stopped it.",
    "isolation.reason.died": "The grader's isolated process ended while running {name} ({cause}).",
    "isolation.reason.too_large": "{name} returned more than {megabytes} MiB of data, which the grader does not accept.",
    "isolation.reason.unsafe_reply": "The grader rejected the data {name} returned: it holds objects other than tensors, numbers, strings, lists, tuples and dicts.",
    "isolation.reason.unsendable": "The result of {name} cannot be sent back to the grader ({kind}). Return tensors, numbers, or lists and tuples of them.",
    "isolation.reason.gave_up": "The grader's isolated process failed again after {starts} starts, so this exercise was not graded.",
    "isolation.what.load": "the answer cells' imports and definitions",
    "isolation.hint.definitions_only": "(Grading runs only the imports, function and class definitions and constant assignments of the answer cells; pass any other variable your function uses as an argument, or create it inside the function.)",
}
