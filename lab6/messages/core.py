"""Messages of the EViT core: keep-rate schedules and model wrapping."""

ZH_TW = {
    "schedule.empty": "keep rate 設定是空的。請給一個 0 到 1 之間的數字，例如 0.7。",
    "schedule.bad_rate": "keep rate {value!r} 不在 (0, 1] 範圍內。每個 keep rate 都必須大於 0 且不超過 1，例如 0.7。",
    "schedule.not_number": "無法把 {value!r} 讀成 keep rate。請寫成小數，例如 0.7 或 1。",
    "schedule.wrong_length": "keep rate 排程有 {got} 個值，但模型有 {depth} 個 block。請每個 block 各給一個值，或改用「0.7@4,7,10」的寫法。",
    "schedule.no_blocks": "指定了 keep rate 卻沒有指定要剪枝的 block。請列出 1 到 {depth} 之間的 block 編號，例如「0.7@4,7,10」。",
    "schedule.bad_block": "block 編號 {value!r} 無效。block 從 1 數到 {depth}（第 1 個 block 是 1）。",
    "schedule.bad_string": "無法解析 keep rate 字串 {text!r}。可用的寫法：「0.7@4,7,10」（在第 4、7、10 個 block 以 0.7 剪枝）、「lab」（實驗預設排程）、或 {depth} 個以逗號分隔的數字，例如「1,1,1,0.7,1,1,0.7,1,1,0.7,1,1」。",
    "schedule.bad_type": "無法把 {kind} 型別的值當作 keep rate 排程。請給一個數字、{depth} 個數字的 tuple，或字串如「0.7@4,7,10」。",
    "model.no_cls": "模型 {name} 沒有 CLS token，EViT 需要用 CLS token 的 attention 來排序 token。請改用有 CLS token 的 ViT，例如 deit_small_patch16_224。",
    "model.unsupported_block": "模型 {name} 的第 {index} 個 block 是 {kind}，lab6 只支援 timm 的標準 Block 與 Attention。請改用 deit_*、deit3_* 或 vit_*_patch16_224 這類模型。",
    "model.unsupported_pool": "模型 {name} 使用 global_pool={pool!r}；EViT 需要以 CLS token 做分類（global_pool='token'）。",
    "index.bad_shape": "第 {step} 個剪枝 block 的索引形狀是 {shape}、型別 {dtype}；需要 [B, K] 的整數 tensor。",
    "index.out_of_range": "第 {step} 個剪枝 block 的索引範圍是 {low} 到 {high}，但它只能指向 0 到 {width} - 1 的 token。請確認索引是相對於上一個 block 的輸出。",
    "model.prefix_tokens": "模型 {name} 有 {count} 個 prefix token（例如 distillation token 或 register token）；lab6 只支援恰好一個 CLS token 的模型。",
    "index.not_tensor": "第 {step} 個剪枝 block 的索引是 {kind}，不是 tensor。請傳入 [B, K] 的整數 tensor，例如 PruneRecord.kept_idx。",
    "index.batch_mismatch": "第 {step} 個剪枝 block 的索引有 {got} 筆樣本，但前面的 block 有 {batch} 筆。每個剪枝 block 的索引都必須來自同一個 batch。",
}

EN = {
    "schedule.empty": "The keep-rate setting is empty. Give a number between 0 and 1, for example 0.7.",
    "schedule.bad_rate": "Keep rate {value!r} is outside (0, 1]. Every keep rate must be greater than 0 and at most 1, for example 0.7.",
    "schedule.not_number": "Cannot read {value!r} as a keep rate. Write it as a decimal, for example 0.7 or 1.",
    "schedule.wrong_length": "The keep-rate schedule has {got} values but the model has {depth} blocks. Give one value per block, or use the form '0.7@4,7,10'.",
    "schedule.no_blocks": "A keep rate was given but no pruning blocks. List block numbers from 1 to {depth}, for example '0.7@4,7,10'.",
    "schedule.bad_block": "Block number {value!r} is invalid. Blocks are numbered 1 to {depth} (the first block is 1).",
    "schedule.bad_string": "Cannot parse the keep-rate string {text!r}. Accepted forms: '0.7@4,7,10' (prune at blocks 4, 7 and 10 with rate 0.7), 'lab' (the lab's default schedule), or {depth} comma-separated numbers such as '1,1,1,0.7,1,1,0.7,1,1,0.7,1,1'.",
    "schedule.bad_type": "Cannot use a value of type {kind} as a keep-rate schedule. Give a number, a tuple of {depth} numbers, or a string such as '0.7@4,7,10'.",
    "model.no_cls": "Model {name} has no CLS token, and EViT ranks tokens by the CLS token's attention. Use a ViT with a CLS token, for example deit_small_patch16_224.",
    "model.unsupported_block": "Block {index} of model {name} is a {kind}; lab6 supports only timm's standard Block and Attention. Use a model such as deit_*, deit3_* or vit_*_patch16_224.",
    "model.unsupported_pool": "Model {name} uses global_pool={pool!r}; EViT needs the CLS token for classification (global_pool='token').",
    "index.bad_shape": "The indices of pruning block {step} have shape {shape} and dtype {dtype}; expected an integer tensor of shape [B, K].",
    "index.out_of_range": "The indices of pruning block {step} range from {low} to {high}, but they can only point to tokens 0 to {width} - 1. Check that they are relative to the previous block's output.",
    "model.prefix_tokens": "Model {name} has {count} prefix tokens (a distillation token or register tokens, for example); lab6 supports only models with exactly one CLS token.",
    "index.not_tensor": "The indices of pruning block {step} are a {kind}, not a tensor. Pass an integer tensor of shape [B, K], such as PruneRecord.kept_idx.",
    "index.batch_mismatch": "The indices of pruning block {step} have {got} samples, but the earlier blocks have {batch}. The indices of every pruning block must come from the same batch.",
}
