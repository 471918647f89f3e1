# Pure-torch reference forward passes used by testdata/gen/make_models.py:
#   * hf_gpt2_forward / hf_bert_forward: line-by-line re-implementations of
#     Hugging Face transformers' GPT2LMHeadModel (eager attention, modeling_gpt2.py)
#     and BertModel / BertForSequenceClassification / BertForMaskedLM
#     (modeling_bert.py), in eval mode (dropout = identity). They also record
#     TransformerLens-named hook activations taken from the HF computation itself.
#   * tl_gpt2_forward / tl_bert_forward: an independent, TransformerLens-style
#     einsum implementation (per-head weight matrices, explicit LayerNorm formula,
#     -inf masking) used to cross-check the first one (the oracle guards itself).
#     Every hook goes through a TransformerLens-style hook point: an optional
#     `edits` dict {hook name: fn(tensor) -> tensor} changes the activation there and
#     the rest of the forward consumes the edited tensor; the recorded hook tensors
#     are the autograd nodes the forward uses (make_interventions.py relies on both).
# Not run directly; regenerate everything with, from the repo root:
#     /usr/bin/python3 testdata/gen/make_models.py
#     /usr/bin/python3 testdata/gen/make_interventions.py

import math

import torch
import torch.nn.functional as F


# ----------------------------------------------------------------------------- helpers

def gelu_new(x):
    # transformers.activations.NewGELUActivation (GPT-2 "gelu_new", tanh approximation)
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def gelu_erf(x):
    # transformers.activations.GELUActivation (BERT "gelu") == torch erf GELU
    return F.gelu(x)


def conv1d(x, w, b):
    # transformers.pytorch_utils.Conv1D.forward: weight is [nx (in), nf (out)]
    size_out = x.size()[:-1] + (w.size(-1),)
    x = torch.addmm(b, x.view(-1, x.size(-1)), w)
    return x.view(size_out)


def ln_scale(x, eps):
    # TransformerLens LayerNorm hook_scale: sqrt(biased variance + eps), shape [..., 1]
    xc = x - x.mean(-1, keepdim=True)
    return (xc.pow(2).mean(-1, keepdim=True) + eps).sqrt()


def ln_explicit(x, w, b, eps):
    xc = x - x.mean(-1, keepdim=True)
    scale = (xc.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    return xc / scale * w + b, scale


def masked_scores_and_pattern(raw_scores, allowed):
    """TransformerLens-style: -inf where not allowed, softmax, NaN (all-masked row) -> 0."""
    neg_inf = torch.tensor(float("-inf"), dtype=raw_scores.dtype)
    scores = torch.where(allowed, raw_scores, neg_inf)
    pattern = F.softmax(scores, dim=-1)
    pattern = torch.where(torch.isnan(pattern), torch.zeros_like(pattern), pattern)
    return scores, pattern


# ----------------------------------------------------------------------------- GPT-2 (HF)

def hf_gpt2_forward(sd, cfg, input_ids, attention_mask=None, hooks=None):
    """GPT2LMHeadModel forward. sd: canonical names without 'transformer.' prefix, float tensors.
    Returns (logits, hidden_states tuple as HF output_hidden_states=True)."""
    D, H, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    Dh = D // H
    eps = cfg["layer_norm_epsilon"]
    npos = cfg["n_positions"]
    B, T = input_ids.shape
    dtype = sd["wte.weight"].dtype
    rec = hooks is not None

    # GPT2Model.forward
    position_ids = torch.arange(0, T, dtype=torch.long).unsqueeze(0)
    inputs_embeds = F.embedding(input_ids, sd["wte.weight"])
    position_embeds = F.embedding(position_ids, sd["wpe.weight"])
    hidden_states = inputs_embeds + position_embeds
    if rec:
        hooks["hook_embed"] = inputs_embeds
        hooks["hook_pos_embed"] = position_embeds.expand(B, T, D)

    ext_mask = None
    if attention_mask is not None:
        ext_mask = attention_mask.view(B, -1)[:, None, None, :].to(dtype)
        ext_mask = (1.0 - ext_mask) * torch.finfo(dtype).min

    # GPT2Attention.bias buffer (registered in __init__, independent of the checkpoint)
    bias = torch.tril(torch.ones((npos, npos), dtype=torch.bool)).view(1, 1, npos, npos)

    all_hidden = ()
    for i in range(L):
        p = "h.%d." % i
        all_hidden = all_hidden + (hidden_states,)
        if rec:
            hooks["blocks.%d.hook_resid_pre" % i] = hidden_states
        # GPT2Block.forward
        residual = hidden_states
        hidden_states = F.layer_norm(hidden_states, (D,), sd[p + "ln_1.weight"], sd[p + "ln_1.bias"], eps)
        if rec:
            hooks["blocks.%d.ln1.hook_scale" % i] = ln_scale(residual, eps)
            hooks["blocks.%d.ln1.hook_normalized" % i] = hidden_states
        # GPT2Attention.forward
        qkv = conv1d(hidden_states, sd[p + "attn.c_attn.weight"], sd[p + "attn.c_attn.bias"])
        query, key, value = qkv.split(D, dim=2)
        if rec:
            hooks["blocks.%d.attn.hook_q" % i] = query.reshape(B, T, H, Dh)
            hooks["blocks.%d.attn.hook_k" % i] = key.reshape(B, T, H, Dh)
            hooks["blocks.%d.attn.hook_v" % i] = value.reshape(B, T, H, Dh)

        def split_heads(t):
            return t.view(t.size()[:-1] + (H, Dh)).permute(0, 2, 1, 3)

        query, key, value = split_heads(query), split_heads(key), split_heads(value)
        # GPT2Attention._attn (eager)
        attn_weights = torch.matmul(query, key.transpose(-1, -2))
        attn_weights = attn_weights / torch.full([], value.size(-1) ** 0.5, dtype=attn_weights.dtype)
        raw_scores = attn_weights
        query_length, key_length = query.size(-2), key.size(-2)
        causal_mask = bias[:, :, key_length - query_length : key_length, :key_length]
        mask_value = torch.full([], torch.finfo(attn_weights.dtype).min, dtype=attn_weights.dtype)
        attn_weights = torch.where(causal_mask, attn_weights.to(attn_weights.dtype), mask_value)
        if ext_mask is not None:
            attn_weights = attn_weights + ext_mask
        attn_weights = F.softmax(attn_weights, dim=-1)
        attn_weights = attn_weights.type(value.dtype)
        attn_output = torch.matmul(attn_weights, value)
        if rec:
            allowed = causal_mask.expand(B, H, T, T)
            if attention_mask is not None:
                allowed = allowed & attention_mask.bool()[:, None, None, :]
            sc, pat = masked_scores_and_pattern(raw_scores, allowed)
            # HF softmax with finfo.min must equal the -inf softmax exactly here
            assert torch.equal(pat, attn_weights), "HF probs != -inf pattern"
            hooks["blocks.%d.attn.hook_attn_scores" % i] = sc
            hooks["blocks.%d.attn.hook_pattern" % i] = pat
            hooks["blocks.%d.attn.hook_z" % i] = attn_output.permute(0, 2, 1, 3)
            W_O = sd[p + "attn.c_proj.weight"].view(H, Dh, D)
            hooks["blocks.%d.attn.hook_result" % i] = torch.einsum("bhtd,hde->bthe", attn_output, W_O)
        attn_output = attn_output.permute(0, 2, 1, 3).contiguous()
        attn_output = attn_output.view(attn_output.size()[:-2] + (D,))
        attn_output = conv1d(attn_output, sd[p + "attn.c_proj.weight"], sd[p + "attn.c_proj.bias"])
        # back in GPT2Block
        hidden_states = attn_output + residual
        if rec:
            hooks["blocks.%d.hook_attn_out" % i] = attn_output
            hooks["blocks.%d.hook_resid_mid" % i] = hidden_states
        residual = hidden_states
        hidden_states = F.layer_norm(hidden_states, (D,), sd[p + "ln_2.weight"], sd[p + "ln_2.bias"], eps)
        if rec:
            hooks["blocks.%d.ln2.hook_scale" % i] = ln_scale(residual, eps)
            hooks["blocks.%d.ln2.hook_normalized" % i] = hidden_states
        # GPT2MLP
        h = conv1d(hidden_states, sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"])
        if rec:
            hooks["blocks.%d.mlp.hook_pre" % i] = h
        h = gelu_new(h)
        if rec:
            hooks["blocks.%d.mlp.hook_post" % i] = h
        h = conv1d(h, sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"])
        hidden_states = residual + h
        if rec:
            hooks["blocks.%d.hook_mlp_out" % i] = h
            hooks["blocks.%d.hook_resid_post" % i] = hidden_states

    pre_lnf = hidden_states
    hidden_states = F.layer_norm(hidden_states, (D,), sd["ln_f.weight"], sd["ln_f.bias"], eps)
    all_hidden = all_hidden + (hidden_states,)
    # GPT2LMHeadModel: lm_head = Linear(n_embd, vocab, bias=False), tied to wte
    logits = F.linear(hidden_states, sd["wte.weight"])
    if rec:
        hooks["ln_final.hook_scale"] = ln_scale(pre_lnf, eps)
        hooks["ln_final.hook_normalized"] = hidden_states
        hooks["unembed.hook_out"] = logits
    return logits, all_hidden


# ----------------------------------------------------------------------------- TL-style hook points

def hook_point(out, edits):
    """A TransformerLens HookPoint: hk(name, x) applies edits[name] (if any) to x,
    records the result in out[name] and returns it, so the rest of the forward
    consumes exactly the recorded tensor (an autograd graph node: its gradient
    is the total derivative of anything computed downstream)."""
    def hk(name, x):
        if edits and name in edits:
            x = edits[name](x)
        out[name] = x
        return x
    return hk


def ln_hooked(x, w, b, eps, hk, prefix):
    """ln_explicit with its two hook points; same arithmetic."""
    xc = x - x.mean(-1, keepdim=True)
    scale = hk(prefix + "hook_scale", (xc.pow(2).mean(-1, keepdim=True) + eps).sqrt())
    return hk(prefix + "hook_normalized", xc / scale * w + b)


# ----------------------------------------------------------------------------- GPT-2 (TL-style check)

def tl_gpt2_forward(sd, cfg, input_ids, attention_mask, edits=None):
    """Independent einsum implementation; returns dict of the same hooks.
    edits: optional {hook name: fn(tensor) -> tensor} applied at that hook point
    (used by make_interventions.py); every hook tensor is consumed downstream."""
    D, H, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    Dh = D // H
    eps = cfg["layer_norm_epsilon"]
    B, T = input_ids.shape
    out = {}
    hk = hook_point(out, edits)
    W_E, W_pos = sd["wte.weight"], sd["wpe.weight"]
    embed = hk("hook_embed", W_E[input_ids])
    pos = hk("hook_pos_embed", W_pos[:T].unsqueeze(0).expand(B, T, D))
    resid = embed + pos
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    allowed = causal[None, None] & attention_mask.bool()[:, None, None, :]
    for i in range(L):
        p = "h.%d." % i
        n = "blocks.%d." % i
        resid = hk(n + "hook_resid_pre", resid)
        x = ln_hooked(resid, sd[p + "ln_1.weight"], sd[p + "ln_1.bias"], eps, hk, n + "ln1.")
        Wqkv, bqkv = sd[p + "attn.c_attn.weight"], sd[p + "attn.c_attn.bias"]
        W_Q, W_K, W_V = [Wqkv[:, j * D : (j + 1) * D].reshape(D, H, Dh) for j in range(3)]
        b_Q, b_K, b_V = [bqkv[j * D : (j + 1) * D].reshape(H, Dh) for j in range(3)]
        q = hk(n + "attn.hook_q", torch.einsum("btd,dhe->bthe", x, W_Q) + b_Q)
        k = hk(n + "attn.hook_k", torch.einsum("btd,dhe->bthe", x, W_K) + b_K)
        v = hk(n + "attn.hook_v", torch.einsum("btd,dhe->bthe", x, W_V) + b_V)
        raw = torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(Dh)
        sc = hk(n + "attn.hook_attn_scores", torch.where(allowed, raw, torch.tensor(float("-inf"), dtype=raw.dtype)))
        pat = F.softmax(sc, dim=-1)
        pat = hk(n + "attn.hook_pattern", torch.where(torch.isnan(pat), torch.zeros_like(pat), pat))
        z = hk(n + "attn.hook_z", torch.einsum("bhqk,bkhe->bqhe", pat, v))
        W_O = sd[p + "attn.c_proj.weight"].reshape(H, Dh, D)
        result = hk(n + "attn.hook_result", torch.einsum("bqhe,hed->bqhd", z, W_O))
        attn_out = hk(n + "hook_attn_out", result.sum(2) + sd[p + "attn.c_proj.bias"])
        resid = hk(n + "hook_resid_mid", resid + attn_out)
        x = ln_hooked(resid, sd[p + "ln_2.weight"], sd[p + "ln_2.bias"], eps, hk, n + "ln2.")
        pre = hk(n + "mlp.hook_pre", x @ sd[p + "mlp.c_fc.weight"] + sd[p + "mlp.c_fc.bias"])
        c = math.sqrt(2.0 / math.pi)
        post = hk(n + "mlp.hook_post", 0.5 * pre * (1.0 + torch.tanh(c * (pre + 0.044715 * pre ** 3))))
        mlp_out = hk(n + "hook_mlp_out", post @ sd[p + "mlp.c_proj.weight"] + sd[p + "mlp.c_proj.bias"])
        resid = hk(n + "hook_resid_post", resid + mlp_out)
    x = ln_hooked(resid, sd["ln_f.weight"], sd["ln_f.bias"], eps, hk, "ln_final.")
    hk("unembed.hook_out", x @ W_E.T)
    return out


# ----------------------------------------------------------------------------- BERT (HF)

def hf_bert_forward(sd, cfg, input_ids, token_type_ids, attention_mask, head, hooks=None):
    """BertModel (+ head) forward. sd: canonical names with 'bert.' prefix and LayerNorm
    weight/bias. head: 'cls' (BertForSequenceClassification, pooler) or 'mlm'
    (BertForMaskedLM, no pooler). Returns (head logits, hidden_states tuple)."""
    D, H, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    Dh = D // H
    eps = cfg["layer_norm_eps"]
    B, T = input_ids.shape
    dtype = sd["bert.embeddings.word_embeddings.weight"].dtype
    rec = hooks is not None

    # BertEmbeddings.forward (absolute positions, position_ids = arange)
    position_ids = torch.arange(cfg["max_position_embeddings"]).expand((1, -1))[:, :T]
    inputs_embeds = F.embedding(input_ids, sd["bert.embeddings.word_embeddings.weight"])
    token_type_embeddings = F.embedding(token_type_ids, sd["bert.embeddings.token_type_embeddings.weight"])
    embeddings = inputs_embeds + token_type_embeddings
    position_embeddings = F.embedding(position_ids, sd["bert.embeddings.position_embeddings.weight"])
    embeddings = embeddings + position_embeddings
    pre_ln = embeddings
    embeddings = F.layer_norm(embeddings, (D,), sd["bert.embeddings.LayerNorm.weight"],
                              sd["bert.embeddings.LayerNorm.bias"], eps)
    if rec:
        hooks["embed.hook_embed"] = inputs_embeds
        hooks["embed.hook_pos_embed"] = position_embeddings.expand(B, T, D)
        hooks["embed.hook_token_type_embed"] = token_type_embeddings
        hooks["embed.ln.hook_scale"] = ln_scale(pre_ln, eps)
        hooks["embed.ln.hook_normalized"] = embeddings

    # ModuleUtilsMixin.get_extended_attention_mask
    ext = attention_mask[:, None, None, :].to(dtype)
    ext = (1.0 - ext) * torch.finfo(dtype).min

    hidden_states = embeddings
    all_hidden = ()
    for i in range(L):
        p = "bert.encoder.layer.%d." % i
        n = "blocks.%d." % i
        all_hidden = all_hidden + (hidden_states,)
        if rec:
            hooks[n + "hook_resid_pre"] = hidden_states
        # BertSelfAttention.forward
        def lin(x, name):
            return F.linear(x, sd[p + name + ".weight"], sd[p + name + ".bias"])

        def tfs(x):
            return x.view(x.size()[:-1] + (H, Dh)).permute(0, 2, 1, 3)

        mixed_q = lin(hidden_states, "attention.self.query")
        mixed_k = lin(hidden_states, "attention.self.key")
        mixed_v = lin(hidden_states, "attention.self.value")
        if rec:
            hooks[n + "attn.hook_q"] = mixed_q.view(B, T, H, Dh)
            hooks[n + "attn.hook_k"] = mixed_k.view(B, T, H, Dh)
            hooks[n + "attn.hook_v"] = mixed_v.view(B, T, H, Dh)
        query_layer, key_layer, value_layer = tfs(mixed_q), tfs(mixed_k), tfs(mixed_v)
        attention_scores = torch.matmul(query_layer, key_layer.transpose(-1, -2))
        attention_scores = attention_scores / math.sqrt(Dh)
        raw_scores = attention_scores
        attention_scores = attention_scores + ext
        attention_probs = F.softmax(attention_scores, dim=-1)
        context_layer = torch.matmul(attention_probs, value_layer)
        if rec:
            allowed = attention_mask.bool()[:, None, None, :].expand(B, H, T, T)
            sc, pat = masked_scores_and_pattern(raw_scores, allowed)
            assert torch.equal(pat, attention_probs), "HF probs != -inf pattern"
            hooks[n + "attn.hook_attn_scores"] = sc
            hooks[n + "attn.hook_pattern"] = pat
            hooks[n + "attn.hook_z"] = context_layer.permute(0, 2, 1, 3)
            W_O = sd[p + "attention.output.dense.weight"]  # [out D, in D]
            W_O = W_O.t().reshape(H, Dh, D)
            hooks[n + "attn.hook_result"] = torch.einsum("bhtd,hde->bthe", context_layer, W_O)
        context_layer = context_layer.permute(0, 2, 1, 3).contiguous()
        context_layer = context_layer.view(context_layer.size()[:-2] + (D,))
        # BertSelfOutput
        so = lin(context_layer, "attention.output.dense")
        resid_mid = so + hidden_states
        attention_output = F.layer_norm(resid_mid, (D,), sd[p + "attention.output.LayerNorm.weight"],
                                        sd[p + "attention.output.LayerNorm.bias"], eps)
        if rec:
            hooks[n + "hook_attn_out"] = so
            hooks[n + "hook_resid_mid"] = resid_mid
            hooks[n + "ln1.hook_scale"] = ln_scale(resid_mid, eps)
            hooks[n + "ln1.hook_normalized"] = attention_output
        # BertIntermediate
        inter = lin(attention_output, "intermediate.dense")
        if rec:
            hooks[n + "mlp.hook_pre"] = inter
        inter = gelu_erf(inter)
        if rec:
            hooks[n + "mlp.hook_post"] = inter
        # BertOutput
        out = lin(inter, "output.dense")
        pre2 = out + attention_output
        hidden_states = F.layer_norm(pre2, (D,), sd[p + "output.LayerNorm.weight"],
                                     sd[p + "output.LayerNorm.bias"], eps)
        if rec:
            hooks[n + "hook_mlp_out"] = out
            hooks[n + "ln2.hook_scale"] = ln_scale(pre2, eps)
            hooks[n + "ln2.hook_normalized"] = hidden_states
            hooks[n + "hook_resid_post"] = hidden_states
    all_hidden = all_hidden + (hidden_states,)

    if head == "cls":
        # BertPooler + BertForSequenceClassification (dropout = identity)
        first_token_tensor = hidden_states[:, 0]
        pooled = torch.tanh(F.linear(first_token_tensor, sd["bert.pooler.dense.weight"], sd["bert.pooler.dense.bias"]))
        logits = F.linear(pooled, sd["classifier.weight"], sd["classifier.bias"])
        if rec:
            hooks["pooler.hook_out"] = pooled
            hooks["classifier.hook_out"] = logits
    elif head == "mlm":
        # BertOnlyMLMHead -> BertLMPredictionHead (decoder tied to word_embeddings, bias = cls.predictions.bias)
        t = F.linear(hidden_states, sd["cls.predictions.transform.dense.weight"], sd["cls.predictions.transform.dense.bias"])
        t = gelu_erf(t)  # config.hidden_act
        t = F.layer_norm(t, (D,), sd["cls.predictions.transform.LayerNorm.weight"],
                         sd["cls.predictions.transform.LayerNorm.bias"], eps)
        logits = F.linear(t, sd["bert.embeddings.word_embeddings.weight"], sd["cls.predictions.bias"])
        if rec:
            hooks["mlm.hook_transform"] = t
            hooks["unembed.hook_out"] = logits
    else:
        raise ValueError(head)
    return logits, all_hidden


# ----------------------------------------------------------------------------- BERT (TL-style check)

def tl_bert_forward(sd, cfg, input_ids, token_type_ids, attention_mask, head, edits=None):
    """Independent einsum implementation; edits as in tl_gpt2_forward."""
    D, H, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    Dh = D // H
    eps = cfg["layer_norm_eps"]
    B, T = input_ids.shape
    out = {}
    hk = hook_point(out, edits)
    e = "bert.embeddings."
    we = hk("embed.hook_embed", sd[e + "word_embeddings.weight"][input_ids])
    pe = hk("embed.hook_pos_embed", sd[e + "position_embeddings.weight"][:T].unsqueeze(0).expand(B, T, D))
    te = hk("embed.hook_token_type_embed", sd[e + "token_type_embeddings.weight"][token_type_ids])
    resid = ln_hooked(we + pe + te, sd[e + "LayerNorm.weight"], sd[e + "LayerNorm.bias"], eps, hk, "embed.ln.")
    allowed = attention_mask.bool()[:, None, None, :].expand(B, H, T, T)

    def W(name):  # nn.Linear weight [out,in] -> [in,out]
        return sd[name + ".weight"].t()

    for i in range(L):
        p = "bert.encoder.layer.%d." % i
        n = "blocks.%d." % i
        resid = hk(n + "hook_resid_pre", resid)
        qkv = []
        for nm, hn in (("query", "q"), ("key", "k"), ("value", "v")):
            Wm = W(p + "attention.self." + nm).reshape(D, H, Dh)
            bm = sd[p + "attention.self." + nm + ".bias"].reshape(H, Dh)
            qkv.append(hk(n + "attn.hook_" + hn, torch.einsum("btd,dhe->bthe", resid, Wm) + bm))
        q, k, v = qkv
        raw = torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(Dh)
        sc = hk(n + "attn.hook_attn_scores", torch.where(allowed, raw, torch.tensor(float("-inf"), dtype=raw.dtype)))
        pat = F.softmax(sc, dim=-1)
        pat = hk(n + "attn.hook_pattern", torch.where(torch.isnan(pat), torch.zeros_like(pat), pat))
        z = hk(n + "attn.hook_z", torch.einsum("bhqk,bkhe->bqhe", pat, v))
        result = hk(n + "attn.hook_result",
                    torch.einsum("bqhe,hed->bqhd", z, W(p + "attention.output.dense").reshape(H, Dh, D)))
        attn_out = hk(n + "hook_attn_out", result.sum(2) + sd[p + "attention.output.dense.bias"])
        mid = hk(n + "hook_resid_mid", resid + attn_out)
        x = ln_hooked(mid, sd[p + "attention.output.LayerNorm.weight"], sd[p + "attention.output.LayerNorm.bias"],
                      eps, hk, n + "ln1.")
        pre = hk(n + "mlp.hook_pre", x @ W(p + "intermediate.dense") + sd[p + "intermediate.dense.bias"])
        post = hk(n + "mlp.hook_post", 0.5 * pre * (1.0 + torch.erf(pre / math.sqrt(2.0))))
        mlp_out = hk(n + "hook_mlp_out", post @ W(p + "output.dense") + sd[p + "output.dense.bias"])
        y = ln_hooked(x + mlp_out, sd[p + "output.LayerNorm.weight"], sd[p + "output.LayerNorm.bias"],
                      eps, hk, n + "ln2.")
        resid = hk(n + "hook_resid_post", y)  # fx convention: the layer output (after ln2)
    if head == "cls":
        pooled = hk("pooler.hook_out", torch.tanh(resid[:, 0] @ W("bert.pooler.dense") + sd["bert.pooler.dense.bias"]))
        hk("classifier.hook_out", pooled @ W("classifier") + sd["classifier.bias"])
    else:
        t = resid @ W("cls.predictions.transform.dense") + sd["cls.predictions.transform.dense.bias"]
        t = 0.5 * t * (1.0 + torch.erf(t / math.sqrt(2.0)))
        t, _ = ln_explicit(t, sd["cls.predictions.transform.LayerNorm.weight"], sd["cls.predictions.transform.LayerNorm.bias"], eps)
        t = hk("mlm.hook_transform", t)
        hk("unembed.hook_out", t @ sd[e + "word_embeddings.weight"].T + sd["cls.predictions.bias"])
    return out
