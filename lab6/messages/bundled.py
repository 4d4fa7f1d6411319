"""Messages about the bundled scenes model and its weights file."""

ZH_TW = {
    "bundled.missing": "找不到內建模型的權重檔 {path}。請確認 lab6/assets/ 完整，或執行 python scripts/train_bundled.py 重新訓練。",
    "bundled.corrupt": "無法讀取內建模型的權重檔 {path}：{reason}。檔案可能損壞或不完整，請重新取得 lab6/assets/，或執行 python scripts/train_bundled.py 重新訓練。",
    "bundled.bad_metadata": "權重檔 {path} 的中繼資料缺少或無法解析 {field}。請重新執行 python scripts/train_bundled.py 產生權重檔。",
    "bundled.mismatch": "權重檔 {path} 與內建模型的架構不符：{reason}。請重新執行 python scripts/train_bundled.py 產生權重檔。",
    "heldout.missing": "找不到保留測試場景檔 {path}。請執行 python scripts/train_bundled.py --write-heldout 重新產生。",
}

EN = {
    "bundled.missing": "The bundled model's weights file {path} was not found. Check that lab6/assets/ is complete, or retrain with python scripts/train_bundled.py.",
    "bundled.corrupt": "Cannot read the bundled model's weights file {path}: {reason}. The file may be damaged or incomplete; restore lab6/assets/ or retrain with python scripts/train_bundled.py.",
    "bundled.bad_metadata": "The metadata of weights file {path} lacks {field} or cannot be parsed. Regenerate the file with python scripts/train_bundled.py.",
    "bundled.mismatch": "Weights file {path} does not fit the bundled architecture: {reason}. Regenerate the file with python scripts/train_bundled.py.",
    "heldout.missing": "The held-out scenes file {path} was not found. Regenerate it with python scripts/train_bundled.py --write-heldout.",
}
