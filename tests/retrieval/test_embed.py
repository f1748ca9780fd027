"""Embedders: the offline descriptor finds the same shot across resolution, pan and codec noise;
a tiny CLIP built offline loads through ``load_embedder`` and embeds images and texts."""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
import pytest
import torch
from PIL import Image

from videomemory.bench import synth
from videomemory.codec.residual import encode_anchor
from videomemory.errors import FailedPrecondition, InvalidArgument
from videomemory.retrieval.embed import DescriptorEmbedder, Embedder, TransformersEmbedder, load_embedder

# skimage's "cat" is the same picture as "chelsea": keep one of them.
DISTINCT = tuple(p for p in synth.PHOTOS if p != "cat")
GREY = ("brick", "camera", "clock", "coins", "grass", "gravel", "moon", "page", "text")

SRC = (480, 360)  # (w, h) of the "source video"
SHIFT = 30  # px of pan between the anchor and the query, in source pixels

# synth keeps only 8 covers; these tests use 17 photos at two sizes each, so keep them all.
_cover = lru_cache(maxsize=None)(synth._cover)


def _jpeg(img: np.ndarray, quality: int = 90) -> np.ndarray:
    """A lossy round trip standing in for H.264 decoding noise."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _to_grid(img: np.ndarray, size: int = 512) -> np.ndarray:
    """Resize onto the square model grid, aspect ignored (what the codec does to every frame)."""
    return np.asarray(Image.fromarray(img).resize((size, size), Image.BICUBIC))


def _frame(photo: str, dx: int, dy: int = 0, w: int = SRC[0], h: int = SRC[1]) -> np.ndarray:
    """A w x h view of ``photo`` panned by (dx, dy) px from the centre view."""
    cover = _cover(photo, w + 2 * SHIFT, h + 2 * SHIFT)
    y0, x0 = (cover.shape[0] - h) // 2 - dy, (cover.shape[1] - w) // 2 - dx
    return np.ascontiguousarray(cover[y0 : y0 + h, x0 : x0 + w])


def _with_sprite(img: np.ndarray, photo: str, x: int, y: int, side: int = 48) -> np.ndarray:
    """``img`` with a ``side`` px square of another photo pasted at (x, y)."""
    out = img.copy()
    out[y : y + side, x : x + side] = _cover(photo, side, side)[:side, :side]
    return out


@pytest.fixture(scope="module")
def descriptor() -> DescriptorEmbedder:
    return DescriptorEmbedder()


@pytest.fixture(scope="module")
def anchors() -> list[np.ndarray]:
    """One stored anchor per photo: the centre view on the 512x512 grid through AVIF, with a sprite."""
    out = []
    for i, p in enumerate(DISTINCT):
        frame = _with_sprite(_frame(p, 0), DISTINCT[(i + 5) % len(DISTINCT)], 40, 200)
        out.append(encode_anchor(_to_grid(frame)).decode())
    return out


# --------------------------------------------------------------------------- descriptor


def test_descriptor_vectors_are_unit_float32_rows(descriptor):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((240, 320), (512, 512), (720, 1280), (7, 5), (1, 1))]
    images.append(np.zeros((64, 64, 3), np.uint8))  # black: no colour, no gradients
    vecs = descriptor.embed_images(images)
    assert isinstance(descriptor, Embedder)
    assert descriptor.name == "descriptor-v1" and not descriptor.supports_text
    assert vecs.shape == (len(images), descriptor.dim) and vecs.dtype == np.float32
    assert 256 - 8 <= descriptor.dim <= 512
    assert np.isfinite(vecs).all()
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert descriptor.embed_images([]).shape == (0, descriptor.dim)


def test_descriptor_is_deterministic_and_batch_independent(descriptor, anchors):
    images = anchors[:6] + [_frame("coffee", 0), _frame("moon", 0, w=320, h=240)]  # mixed sizes
    a = descriptor.embed_images(images)
    assert np.array_equal(a, descriptor.embed_images(images))
    assert np.array_equal(a, DescriptorEmbedder().embed_images(images))
    one = np.concatenate([descriptor.embed_images([img]) for img in images[4:]])
    np.testing.assert_allclose(one, a[4:], atol=1e-6)


def test_descriptor_rejects_non_rgb_images(descriptor):
    with pytest.raises(InvalidArgument, match="RGB"):
        descriptor.embed_images([np.zeros((8, 8), np.uint8)])
    with pytest.raises(InvalidArgument, match="uint8"):
        descriptor.embed_images([np.zeros((8, 8, 3), np.float32)])


@pytest.mark.parametrize("query_size", [(480, 360), (320, 240)])
def test_descriptor_finds_the_same_shot_at_rank_one(descriptor, anchors, query_size):
    """A later frame of each shot (panned by 30 px, the sprite moved, another resolution, lossy)
    finds that shot's anchor first among the anchors of 16 different photos, 9 of them grey."""
    assert len(DISTINCT) >= 15 and len(set(GREY) & set(DISTINCT)) == len(GREY)
    w, h = query_size
    scale = w / SRC[0]
    queries = []
    for i, p in enumerate(DISTINCT):
        frame = _with_sprite(_frame(p, SHIFT, SHIFT // 3), DISTINCT[(i + 5) % len(DISTINCT)], 140, 180)
        if (w, h) != SRC:
            frame = np.asarray(Image.fromarray(frame).resize((w, h), Image.BOX))
        queries.append(_jpeg(frame))
        assert queries[-1].shape == (round(SRC[1] * scale), w, 3)
    sims = descriptor.embed_images(queries) @ descriptor.embed_images(anchors).T  # (Q, A)
    ranked = np.argsort(-sims, axis=1)
    misses = [(p, DISTINCT[ranked[i, 0]]) for i, p in enumerate(DISTINCT) if ranked[i, 0] != i]
    assert not misses, f"query photo -> best anchor: {misses}"
    margin = np.diag(sims) - np.where(np.eye(len(DISTINCT), dtype=bool), -np.inf, sims).max(axis=1)
    assert margin.min() > 0.01


def test_descriptor_separates_same_photo_views_from_other_photos(descriptor):
    """A shifted, recompressed, resized copy is nearer than any frame of another photo."""
    photos = DISTINCT[:12]
    base = descriptor.embed_images([_frame(p, 0) for p in photos])
    moved = descriptor.embed_images([_jpeg(_to_grid(_frame(p, -SHIFT, SHIFT)), 75) for p in photos])
    sims = moved @ base.T
    for i in range(len(photos)):
        others = np.delete(sims[i], i)
        assert sims[i, i] > others.max(), (photos[i], photos[int(np.argmax(sims[i]))])


def test_descriptor_has_no_text(descriptor):
    with pytest.raises(FailedPrecondition, match="--embedder"):
        descriptor.embed_texts(["a cat on a sofa"])


@pytest.mark.parametrize("spec", [None, "", "descriptor"])
def test_load_embedder_default_is_the_descriptor(spec):
    emb = load_embedder(spec)
    assert isinstance(emb, DescriptorEmbedder) and emb.name == "descriptor-v1"


# --------------------------------------------------------------------------- transformers

WORDS = ["a", "photo", "of", "cat", "dog", "car", "red", "blue", "on", "the", "street", "sofa"]
SPECIALS = ["[PAD]", "[UNK]", "<|startoftext|>", "<|endoftext|>"]


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    """A randomly initialised CLIP with a word-level tokenizer, saved offline to one directory."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + WORDS)}
    bos, eos, pad = vocab["<|startoftext|>"], vocab["<|endoftext|>"], vocab["[PAD]"]
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", bos), ("<|endoftext|>", eos)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        unk_token="[UNK]",
        pad_token="[PAD]",
        model_max_length=16,
    )
    common = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, projection_dim=16)
    config = CLIPConfig(
        text_config=dict(
            common, vocab_size=len(vocab), max_position_embeddings=16, bos_token_id=bos, eos_token_id=eos, pad_token_id=pad
        ),
        vision_config=dict(common, image_size=32, patch_size=8),
        projection_dim=16,
    )
    torch.manual_seed(0)
    model = CLIPModel(config).eval()
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    path = tmp_path_factory.mktemp("models") / "tiny-clip"
    model.save_pretrained(path)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_clip(tiny_clip_dir) -> TransformersEmbedder:
    emb = load_embedder(str(tiny_clip_dir), device="cpu")
    assert isinstance(emb, TransformersEmbedder)
    return emb


def test_tiny_clip_loads_with_its_dimension_and_text(tiny_clip):
    assert isinstance(tiny_clip, Embedder)
    assert tiny_clip.dim == 16
    assert tiny_clip.supports_text
    assert tiny_clip.name == "hf:tiny-clip"


def test_tiny_clip_image_vectors(tiny_clip):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((40, 40), (240, 320), (64, 48), (100, 30), (33, 33))]
    batched = tiny_clip.embed_images(images)
    assert batched.shape == (5, 16) and batched.dtype == np.float32
    assert np.isfinite(batched).all()
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    one_by_one = np.concatenate([tiny_clip.embed_images([img]) for img in images])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    twice = tiny_clip.embed_images([images[1], images[1]])
    np.testing.assert_allclose(twice[0], twice[1], atol=1e-6)
    assert not np.allclose(batched[0], batched[1], atol=1e-3)  # different images, different vectors
    assert tiny_clip.embed_images([]).shape == (0, 16)


def test_tiny_clip_text_vectors(tiny_clip):
    texts = ["a photo of a cat", "red car", "the dog on the sofa on the street", "zebra"]  # "zebra" is unknown
    batched = tiny_clip.embed_texts(texts)
    assert batched.shape == (4, 16) and batched.dtype == np.float32
    assert np.isfinite(batched).all()
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    one_by_one = np.concatenate([tiny_clip.embed_texts([t]) for t in texts])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    assert not np.allclose(batched[0], batched[1], atol=1e-3)


def test_small_batches_give_the_same_vectors(tiny_clip_dir, tiny_clip):
    small = TransformersEmbedder(str(tiny_clip_dir), device="cpu", batch_size=2)
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(5)]
    np.testing.assert_allclose(small.embed_images(images), tiny_clip.embed_images(images), atol=1e-5)
    texts = ["a cat", "a blue car on the street", "dog", "photo of the sofa", "red"]
    np.testing.assert_allclose(small.embed_texts(texts), tiny_clip.embed_texts(texts), atol=1e-5)


def test_missing_model_is_a_failed_precondition(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FailedPrecondition, match="save_pretrained") as info:
        load_embedder(str(missing), device="cpu")
    assert "no-such-model" in str(info.value)


def test_default_device_loads_too(tiny_clip_dir, tiny_clip):
    """device="auto": CUDA in fp16 where there is one, else CPU; the vectors agree either way."""
    auto = load_embedder(str(tiny_clip_dir))
    assert auto.dim == 16 and auto.name == tiny_clip.name
    image = [np.full((40, 56, 3), 120, np.uint8)]
    got = auto.embed_images(image)
    assert got.dtype == np.float32 and np.isfinite(got).all()
    np.testing.assert_allclose(got, tiny_clip.embed_images(image), atol=2e-2)
    np.testing.assert_allclose(auto.embed_texts(["a red car"]), tiny_clip.embed_texts(["a red car"]), atol=2e-2)
