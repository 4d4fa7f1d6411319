"""Messages about model weights and the device."""

_GET_WEIGHTS_ZH = (
    "取得權重的方法：(1) 在能連上網路的電腦上執行一次 `python -m lab6 visualize --model {name}`，"
    "timm 會把權重下載到 Hugging Face 快取（{cache}），之後離線也能使用；"
    "(2) 自行下載權重檔，再用 `--checkpoint 檔案路徑` 載入；"
    "(3) 改用不需要網路的內建模型：`--model bundled`。"
)
_GET_WEIGHTS_EN = (
    "To get the weights: (1) run `python -m lab6 visualize --model {name}` once on a machine with "
    "network access, so timm stores them in the Hugging Face cache ({cache}) for later offline use; "
    "(2) download a weights file yourself and load it with `--checkpoint PATH`; "
    "(3) use the bundled model, which needs no network: `--model bundled`."
)

ZH_TW = {
    "device.invalid": "無法辨識裝置 {value!r}（來自 {env} 或 --device）。可用的值：cpu、cuda、cuda:0、mps 或 auto。",
    "device.cuda_missing": "要求使用裝置 {value!r}，但這台電腦的 PyTorch 找不到 CUDA GPU。請改用 --device cpu 或 auto，或把 {env} 設成 cpu 或 auto。",
    "device.cuda_index": "要求使用裝置 {value!r}，但這台電腦只有 {count} 個 CUDA GPU（編號從 0 開始）。請修改 --device 或 {env}。",
    "device.mps_missing": "要求使用裝置 {value!r}，但這台電腦的 PyTorch 無法使用 Apple MPS。請改用 --device cpu 或 auto，或把 {env} 設成 cpu 或 auto。",
    "weights.describe_bundled": "內建模型（於程式產生的場景上訓練，{classes} 個類別），權重檔：{location}",
    "weights.describe_timm": "{architecture}，timm 預訓練權重（{classes} 個類別），來源：{location}",
    "weights.describe_checkpoint": "{architecture}，權重來自檢查點檔案 {location}（{classes} 個類別）",
    "weights.unknown_model": "timm 沒有名為 {name!r} 的模型。相近的名稱：{suggestions}。不需要網路的內建模型請用 `--model bundled`。",
    "weights.unknown_tag": "timm 的 {architecture} 沒有名為 {name!r} 的預訓練權重版本。可用的版本：{suggestions}。",
    "weights.no_pretrained": "timm 沒有提供 {name} 的預訓練權重。請改用有預訓練權重的模型（例如 deit_small_patch16_224），或用 `--checkpoint 檔案路徑` 載入自己的權重。",
    "weights.not_cached": "找不到 {name} 的預訓練權重（{hub_id}）：本機快取裡沒有，而 HF_HUB_OFFLINE 已關閉下載。" + _GET_WEIGHTS_ZH,
    "weights.download_failed": "無法下載 {name} 的預訓練權重（{hub_id}）：{error}。" + _GET_WEIGHTS_ZH,
    "weights.file_missing": "找不到權重檔 {path}。請確認路徑是否正確。",
    "weights.inaccessible": "無法開啟權重檔 {path}（{error}）。請確認路徑正確、檔名不過長，而且你有讀取權限。",
    "weights.is_directory": "{path} 是資料夾，不是權重檔。請指定 .pth、.pt 或 .safetensors 檔案。",
    "weights.empty_file": "權重檔 {path} 是空的（0 位元組），可能是下載或複製中斷。請重新下載或重新儲存。",
    "weights.corrupt": "無法讀取權重檔 {path}：檔案已損毀、不完整，或不是 PyTorch/safetensors 格式（{error}）。請重新下載或重新儲存。",
    "weights.unsafe_pickle": (
        "權重檔 {path} 含有張量以外的 Python 物件，基於安全考量 lab6 只以 weights_only 模式載入（{error}）。"
        "如果你信任這個檔案，可以只存下權重再載入："
        "`torch.save(torch.load('舊檔.pth', weights_only=False)['model'], '新檔.pth')`。"
    ),
    "weights.not_state_dict": "權重檔 {path} 裡沒有 state dict（讀到的是 {found}）。請存成 `torch.save(model.state_dict(), 檔名)`，或放在 'model' 鍵底下。",
    "weights.wrong_architecture": (
        "權重檔 {path} 與模型 {name} 的架構不符。檢查點：{checkpoint_shape}；{name}：{model_shape}。"
        "{details}。"
        "請用 `--model 名稱` 指定訓練這個檢查點時的架構，例如 deit_tiny_patch16_224 或 deit_small_patch16_224。"
    ),
    "weights.integer_weights": "權重檔 {path} 把 {count} 個浮點數參數存成整數（{dtype}，例如 {keys}），這是量化過的檢查點，lab6 無法載入。請改用未量化的浮點數權重檔。",
    "weights.not_finite": "權重檔 {path} 有 {count} 個參數含有 NaN 或無限大（{keys}），用它算出的結果沒有意義。請改用訓練發散之前存下的權重檔。",
    "weights.shape_summary": "寬度 {width}、{depth} 個 block",
    "weights.part_missing": "缺少 {count} 個參數（{keys}）",
    "weights.part_unexpected": "多出 {count} 個參數（{keys}）",
    "weights.part_mismatched": "{count} 個參數形狀不符，檢查點 vs 模型（{keys}）",
    "weights.part_separator": "；",
}

EN = {
    "device.invalid": "Unknown device {value!r} (from {env} or --device). Valid values: cpu, cuda, cuda:0, mps or auto.",
    "device.cuda_missing": "Device {value!r} was requested, but PyTorch finds no CUDA GPU on this machine. Use --device cpu or auto, or set {env} to cpu or auto.",
    "device.cuda_index": "Device {value!r} was requested, but this machine has only {count} CUDA GPUs (numbered from 0). Change --device or {env}.",
    "device.mps_missing": "Device {value!r} was requested, but PyTorch cannot use Apple MPS on this machine. Use --device cpu or auto, or set {env} to cpu or auto.",
    "weights.describe_bundled": "bundled model (trained on procedural scenes, {classes} classes), weights file: {location}",
    "weights.describe_timm": "{architecture}, timm pretrained weights ({classes} classes), from: {location}",
    "weights.describe_checkpoint": "{architecture}, weights from checkpoint file {location} ({classes} classes)",
    "weights.unknown_model": "timm has no model named {name!r}. Close names: {suggestions}. For the bundled model, which needs no network, use `--model bundled`.",
    "weights.unknown_tag": "timm has no pretrained weights named {name!r} for {architecture}. Available: {suggestions}.",
    "weights.no_pretrained": "timm provides no pretrained weights for {name}. Use a model that has them (for example deit_small_patch16_224), or load your own with `--checkpoint PATH`.",
    "weights.not_cached": "Pretrained weights for {name} ({hub_id}) are not in the local cache, and HF_HUB_OFFLINE forbids downloading them. " + _GET_WEIGHTS_EN,
    "weights.download_failed": "Could not download pretrained weights for {name} ({hub_id}): {error}. " + _GET_WEIGHTS_EN,
    "weights.file_missing": "Weights file {path} not found. Check the path.",
    "weights.inaccessible": "Cannot open weights file {path} ({error}). Check that the path is correct, the name is not too long, and you have read permission.",
    "weights.is_directory": "{path} is a folder, not a weights file. Give a .pth, .pt or .safetensors file.",
    "weights.empty_file": "Weights file {path} is empty (0 bytes); a download or copy was probably interrupted. Download or save it again.",
    "weights.corrupt": "Cannot read weights file {path}: it is damaged, truncated, or not in PyTorch or safetensors format ({error}). Download or save it again.",
    "weights.unsafe_pickle": (
        "Weights file {path} contains Python objects other than tensors, and lab6 loads files only in "
        "weights_only mode for safety ({error}). If you trust the file, save just the weights and load those: "
        "`torch.save(torch.load('old.pth', weights_only=False)['model'], 'new.pth')`."
    ),
    "weights.not_state_dict": "Weights file {path} holds no state dict (found {found}). Save it with `torch.save(model.state_dict(), PATH)`, or under a 'model' key.",
    "weights.wrong_architecture": (
        "Weights file {path} does not fit the architecture of model {name}. Checkpoint: {checkpoint_shape}; "
        "{name}: {model_shape}. {details}. "
        "Name the architecture the checkpoint was trained with via `--model NAME`, for example "
        "deit_tiny_patch16_224 or deit_small_patch16_224."
    ),
    "weights.integer_weights": "Weights file {path} stores {count} floating-point parameters as integers ({dtype}; {keys}), as a quantized checkpoint does, and lab6 cannot load quantized weights. Use the unquantized floating-point checkpoint.",
    "weights.not_finite": "Weights file {path} has {count} parameters containing NaN or infinity ({keys}), so any output computed with it is meaningless. Use a checkpoint saved before training diverged.",
    "weights.shape_summary": "width {width}, {depth} blocks",
    "weights.part_missing": "{count} parameters missing ({keys})",
    "weights.part_unexpected": "{count} unexpected parameters ({keys})",
    "weights.part_mismatched": "{count} parameters with another shape, checkpoint vs model ({keys})",
    "weights.part_separator": "; ",
}
