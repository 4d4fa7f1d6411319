"""Messages of the command line (``python -m lab6``) and of the pruning figure."""

ZH_TW = {
    "cli.description": "lab6：在 timm 的 Vision Transformer 上觀察 EViT 的 token 剪枝。",
    "cli.usage_prefix": "用法：",
    "cli.positionals_title": "位置參數",
    "cli.options_title": "選項",
    "cli.commands_title": "指令",
    "cli.help_help": "顯示這段說明後結束",
    "cli.usage_error": "{prog}：命令列參數有誤：{detail}。請執行 `{prog} --help` 查看用法。",
    "cli.error_prefix": "錯誤：",
    "cli.visualize_summary": "畫出每個剪枝 block 之後留下的 patch",
    "cli.visualize_description": (
        "用 EViT 分類一張圖片，列出每個 block 之後的 token 數與前 5 名類別，並把每個剪枝 block "
        "留下的 patch 畫成一張 PNG 圖。\n"
        "預設使用內建模型（不需要網路）；`--model deit_small_patch16_224` 使用 timm 的預訓練權重；"
        "`--checkpoint 檔案` 載入自己的權重檔。\n"
        "訊息語言：預設為繁體中文，設定環境變數 LAB6_LANG=en 改為英文。"
    ),
    "cli.image_metavar": "IMAGE",
    "cli.image_help": "圖片檔（Pillow 能讀取的任何格式）；省略時，內建模型使用一張保留測試場景，ImageNet 模型使用內附的範例照片",
    "cli.weights_group": "模型與權重",
    "cli.model_help": "bundled（內建模型，沒有 --checkpoint 時的預設）或 timm 模型名稱，例如 deit_small_patch16_224（有 --checkpoint 時的預設）",
    "cli.checkpoint_help": "權重檔（.pth、.pt 或 .safetensors），載入到 --model 指定的架構",
    "cli.pruning_group": "剪枝設定",
    "cli.keep_rate_help": "keep rate 排程：「0.7@4,7,10」（預設：在第 4、7、10 個 block 以 0.7 剪枝）、「lab」、單一數字，或每個 block 各一個數字",
    "cli.no_fuse_help": "不把被丟棄的 token 合併成 fused token",
    "cli.out_help": "輸出圖檔路徑（PNG，預設 {default}，位於目前資料夾）",
    "cli.device_help": "cpu、cuda、cuda:N、mps 或 auto（預設讀取環境變數 LAB6_DEVICE，未設定時為 auto）",
    "cli.out_not_png": "輸出檔 {path} 的副檔名不是 .png；lab6 只輸出 PNG 圖。請改用例如 --out lab6_figure.png。",
    "cli.out_is_directory": "輸出路徑 {path} 是資料夾。請指定檔名，例如 --out {path}/lab6_figure.png。",
    "cli.out_folder_missing": "無法寫入 {path}：資料夾 {folder} 不存在。請先建立資料夾，或換一個輸出路徑。",
    "cli.out_write_failed": "無法寫入圖檔 {path}（{error}）。請確認有寫入權限，或換一個輸出路徑。",
    "cli.image_scene": "保留測試場景（seed {seed}，正確類別：{label}）",
    "cli.image_photo": "範例照片 {path}",
    "cli.line_model": "模型：{text}",
    "cli.line_device": "裝置：{device}",
    "cli.line_image": "圖片：{text}",
    "cli.line_schedule": "keep rate 排程：{schedule}（fused token：{fuse}）",
    "cli.on": "開",
    "cli.off": "關",
    "cli.line_counts": "每個 block 之後的 token 數（輸入 {start} 個；包含 CLS token 與 fused token）：",
    "cli.line_top": "前 {k} 名類別：",
    "cli.line_figure": "圖已儲存：{path}",
    "figure.bad_sample": "要畫的樣本編號 {sample} 超出範圍：這個 batch 只有 {batch} 張圖（編號 0 到 {batch} - 1）。",
    "figure.view_mismatch": "圖片的形狀是 {shape}，以 patch 大小 {patch_size} 切成 {grid} 個 patch，但模型處理的是 {patches} 個 patch。請傳入模型實際看到的圖片（PreparedImage.view）與模型的 patch 大小。",
    "figure.fuse_mismatch": "畫圖時指定 fuse={fuse}，但模型執行時的設定是 fuse={made_with}。請傳入與 apply_evit 或 set_keep_rate 相同的 fuse 設定。",
}

EN = {
    "cli.description": "lab6: watch EViT prune tokens in timm's Vision Transformers.",
    "cli.usage_prefix": "usage: ",
    "cli.positionals_title": "positional arguments",
    "cli.options_title": "options",
    "cli.commands_title": "commands",
    "cli.help_help": "show this help message and exit",
    "cli.usage_error": "{prog}: invalid command line: {detail}. Run `{prog} --help` for usage.",
    "cli.error_prefix": "error: ",
    "cli.visualize_summary": "draw the patches each pruning block keeps",
    "cli.visualize_description": (
        "Classify one image with EViT, print the token count after every block and the top-5 "
        "classes, and draw the patches each pruning block keeps into a PNG figure.\n"
        "The bundled model is the default and needs no network; `--model deit_small_patch16_224` uses "
        "timm's pretrained weights; `--checkpoint FILE` loads your own weights file.\n"
        "Messages are in Traditional Chinese by default; set LAB6_LANG=en for English."
    ),
    "cli.image_metavar": "IMAGE",
    "cli.image_help": "image file (any format Pillow reads); without it, the bundled model uses a held-out scene and ImageNet models the bundled sample photo",
    "cli.weights_group": "model and weights",
    "cli.model_help": "bundled (the bundled model, the default without --checkpoint) or a timm model name such as deit_small_patch16_224 (the default with --checkpoint)",
    "cli.checkpoint_help": "weights file (.pth, .pt or .safetensors) to load into the architecture --model names",
    "cli.pruning_group": "pruning",
    "cli.keep_rate_help": "keep-rate schedule: '0.7@4,7,10' (default: prune at blocks 4, 7 and 10 with rate 0.7), 'lab', one number, or one number per block",
    "cli.no_fuse_help": "drop pruned tokens instead of fusing them into one fused token",
    "cli.out_help": "path of the output figure (PNG; default {default} in the current folder)",
    "cli.device_help": "cpu, cuda, cuda:N, mps or auto (default: the LAB6_DEVICE environment variable, else auto)",
    "cli.out_not_png": "Output file {path} does not end in .png; lab6 writes PNG figures only. Use, for example, --out lab6_figure.png.",
    "cli.out_is_directory": "Output path {path} is a folder. Give a file name, for example --out {path}/lab6_figure.png.",
    "cli.out_folder_missing": "Cannot write {path}: folder {folder} does not exist. Create it first, or choose another output path.",
    "cli.out_write_failed": "Cannot write figure {path} ({error}). Check write permission, or choose another output path.",
    "cli.image_scene": "held-out scene (seed {seed}, true class: {label})",
    "cli.image_photo": "sample photo {path}",
    "cli.line_model": "Model: {text}",
    "cli.line_device": "Device: {device}",
    "cli.line_image": "Image: {text}",
    "cli.line_schedule": "Keep-rate schedule: {schedule} (fused token: {fuse})",
    "cli.on": "on",
    "cli.off": "off",
    "cli.line_counts": "Tokens after every block ({start} at the input; CLS token and fused token included):",
    "cli.line_top": "Top-{k} classes:",
    "cli.line_figure": "Figure saved: {path}",
    "figure.bad_sample": "Sample {sample} is out of range: the batch has only {batch} images (numbered 0 to {batch} - 1).",
    "figure.view_mismatch": "The picture has shape {shape}, which patch size {patch_size} cuts into {grid} patches, but the model saw {patches} patches. Pass the picture the model saw (PreparedImage.view) and the model's patch size.",
    "figure.fuse_mismatch": "The figure was asked for fuse={fuse}, but the model ran with fuse={made_with}. Pass the same fuse setting as to apply_evit or set_keep_rate.",
}
