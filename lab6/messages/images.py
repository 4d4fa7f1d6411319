"""Messages about image files given to lab6."""

ZH_TW = {
    "image.missing": "找不到圖片檔 {path}。請確認路徑是否正確。",
    "image.is_directory": "{path} 是資料夾，不是圖片檔。請指定一個圖片檔，例如 photo.jpg。",
    "image.not_image": "{path} 不是 Pillow 能讀取的圖片檔。請改用 JPEG、PNG、BMP、GIF、TIFF 或 WebP 等格式的圖片。",
    "image.unreadable": "無法讀取圖片檔 {path}：檔案可能不完整或已損毀（{error}）。請重新下載或重新儲存這張圖片。",
    "image.inaccessible": "無法開啟圖片檔 {path}（{error}）。請確認路徑正確、檔名不過長，而且你有讀取權限。",
    "image.too_large": "圖片檔 {path} 太大，Pillow 為了防範解壓縮炸彈而拒絕開啟（{error}）。請先把圖片縮小再使用。",
}

EN = {
    "image.missing": "Image file {path} not found. Check the path.",
    "image.is_directory": "{path} is a folder, not an image file. Give one image file, for example photo.jpg.",
    "image.not_image": "{path} is not an image file that Pillow can read. Use an image in a format such as JPEG, PNG, BMP, GIF, TIFF or WebP.",
    "image.unreadable": "Cannot read image file {path}: it may be truncated or damaged ({error}). Download or save the image again.",
    "image.inaccessible": "Cannot open image file {path} ({error}). Check that the path is correct, the name is not too long, and you have read permission.",
    "image.too_large": "Image file {path} is too large; Pillow rejects it as a possible decompression bomb ({error}). Shrink the image first.",
}
