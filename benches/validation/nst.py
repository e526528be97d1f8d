#!/usr/bin/env python3
"""Noise stress test records, made the way the MIT-BIH Noise Stress Test Database was made.

    python3 benches/validation/nst.py --check      # rebuild 118e06 etc. from mitdb/118 + em, compare
    python3 benches/validation/nst.py --out DIR    # all mitdb records at 12, 6 and 0 dB into DIR

The procedure is WFDB's `nst` (G. Moody; read in `app/nst.c` and `app/sigamp.c` of the WFDB
software package, GPL — reimplemented here from that reading, not copied):

- Signal size: `sigamp -a atr`, the peak-to-peak amplitude in a window of ±0.05 s around each of
  the first 300 beats that WFDB's `map1` calls normal (N L R a J A S j / Q B e n f), then the mean
  of those 300 after trimming the lowest and highest 5 %. Per signal.
- Noise size: `sigamp -r`, the RMS about the mean of each of the first 300 one-second windows of
  the noise record (each deviation truncated to an integer, as the C does), trimmed the same way.
- Noise gain: `r = 10^(-SNR/20) · √2/4 · signal / noise`: SNR compares the signal's
  peak-to-peak amplitude, taken as a sine's (RMS = p-p·√2/4), with the noise's RMS.
- Protocol: no noise for the first 5 minutes, then noise switched on and off every 2 minutes to
  the end. At every switch the output is offset so it continues without a step (`z` below).
- Output: `ecg - adc_zero + gain · noise - z`, truncated to an integer; ECG signal i gets noise
  signal i (mod the noise record's signal count).

Reference annotations are the clean record's own (the database copies them too), so the generated
records are scored with the clean record's `.atr`.
"""
import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qrs import ensure_venv  # noqa: E402  (re-executes under the pinned venv)

ensure_venv()
import numpy as np  # noqa: E402
import wfdb  # noqa: E402

# WFDB annotation symbols that `map1` maps to NORMAL (ecgmap.h: codes 1 2 3 4 7 8 9 11 12 13 25 34 35 38).
MAP1_NORMAL = set("NLRaJASj/QBenf")
SNRS = (12, 6, 0)
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def trimmed_mean(values):
    """sigamp's trimmed mean: sort, drop n/20 from each end (integer division), average the rest."""
    a = sorted(values)
    lo = len(a) // 20
    kept = a[lo : len(a) - lo]
    return sum(kept) / len(kept)


def qrs_amplitude(d_signal, ann, fs, nmax=300):
    """`sigamp -a atr`: per signal, trimmed mean of peak-to-peak amplitude around normal beats."""
    half = int(0.05 * fs + 0.5)  # strtim("0.05")
    amps = [[] for _ in range(d_signal.shape[1])]
    for t, sym in zip(ann.sample, ann.symbol):
        if len(amps[0]) >= nmax:
            break
        if sym not in MAP1_NORMAL:
            continue
        lo, hi = t - half, t + half + 1
        if lo < 0 or hi > len(d_signal):
            break
        seg = d_signal[lo:hi]
        for i in range(seg.shape[1]):
            amps[i].append(int(seg[:, i].max()) - int(seg[:, i].min()))
    return [trimmed_mean(a) for a in amps]


def noise_rms(d_noise, fs, nmax=300):
    """`sigamp -r`: per signal, trimmed mean of RMS about the mean over 1 s windows."""
    w = int(1.0 * fs + 0.5)
    out = []
    for i in range(d_noise.shape[1]):
        rms = []
        for k in range(nmax):
            seg = d_noise[k * w : (k + 1) * w, i].astype(np.int64)
            if len(seg) < w:
                break
            mean = seg.sum() / w
            dev = np.trunc(seg - mean).astype(np.int64)  # `int v = vv - vmean`
            rms.append(math.sqrt(float((dev * dev).sum()) / w))
        out.append(trimmed_mean(rms))
    return out


def protocol(n, fs):
    """Switch times (sample index from which the new gain applies) and on/off state."""
    t0, dt = int(300 * fs + 0.5), int(120 * fs + 0.5)
    return [(t, k % 2 == 0) for k, t in enumerate(range(t0, n, dt))] + [(n, False)]


def add_noise(d_ecg, adc_zero, d_noise, gains, fs):
    """`nst`'s output loop: integer samples, offsets recomputed at each protocol switch."""
    n, nsig = d_ecg.shape
    nn = d_noise.shape[1]
    if len(d_noise) < n:  # nst wraps the noise record; a continuous offset is kept by z
        raise ValueError("noise record shorter than the ECG record: not supported here")
    zz = np.asarray(adc_zero, dtype=np.int64)
    ecg = d_ecg.astype(np.int64) - zz
    out = np.empty((n, nsig), dtype=np.int64)
    # nst counts the noise record's length down and rewinds it when it reaches zero: at the last
    # sample of a record as long as the noise (every mitdb record and `em`), which then gets noise
    # sample 0. Its offset there is recomputed from the ECG sample *before* the ADC zero is removed,
    # so that one sample steps down by the ADC zero (1024 in mitdb); the database's records have
    # that step, and we keep it to reproduce them exactly.
    wrap = n - 1
    for i in range(nsig):
        noise = d_noise[:n, i % nn].astype(np.float64)
        noise[wrap] = d_noise[0, i % nn]
        g, z, start = 0.0, 0, 0
        for t, on in protocol(n, fs):
            seg = slice(start, min(t, wrap))
            # vout = vin + gn*noise - z, double to int truncates toward zero
            out[seg, i] = np.trunc(ecg[seg, i] + g * noise[seg] - z).astype(np.int64)
            if t >= n:
                break
            g = gains[i] if on else 0.0
            last = t - 1  # nst's vin/vout still hold the last sample written
            z = int(np.trunc(ecg[last, i] + g * noise[last] - out[last, i]))
            start = t
        z = int(np.trunc(d_ecg[wrap, i] + g * noise[wrap] - out[wrap - 1, i]))
        out[wrap, i] = int(np.trunc(ecg[wrap, i] + g * noise[wrap] - z))
    return out


def stress_record(clean: Path, noise: Path, snr: float):
    rec = wfdb.rdrecord(str(clean), physical=False)
    ann = wfdb.rdann(str(clean), "atr")
    nrec = wfdb.rdrecord(str(noise), physical=False)
    if abs(nrec.fs - rec.fs) > 0.1 * rec.fs:
        raise ValueError(f"{noise}: {nrec.fs} Hz noise for a {rec.fs} Hz record (nst would resample)")
    asig = qrs_amplitude(rec.d_signal, ann, rec.fs)
    anoise = noise_rms(nrec.d_signal, nrec.fs)
    nsr = 10 ** (snr / -20) * math.sqrt(2) / 4
    gains = [nsr * asig[i] / anoise[i % len(anoise)] for i in range(rec.n_sig)]
    out = add_noise(rec.d_signal, rec.adc_zero, nrec.d_signal, gains, rec.fs)
    return rec, ann, out, gains


def write(rec, ann, out, name, directory: Path, snr):
    fmt = "212" if out.min() >= -2048 and out.max() <= 2047 else "16"
    wfdb.wrsamp(
        name, fs=rec.fs, units=rec.units, sig_name=rec.sig_name, d_signal=out.astype(np.int32),
        fmt=[fmt] * rec.n_sig, adc_gain=rec.adc_gain, baseline=rec.baseline,
        comments=[f"nst.py: {rec.record_name} + em at {snr} dB (after WFDB nst)"], write_dir=str(directory),
    )
    wfdb.wrann(name, "atr", ann.sample, ann.symbol, subtype=ann.subtype, chan=ann.chan, num=ann.num,
               aux_note=ann.aux_note, write_dir=str(directory))


def check(mitdb: Path, nstdb: Path):
    """Rebuild the database's 118eNN from mitdb/118 + em and compare sample by sample."""
    worst = 0
    for name in sorted(p.stem for p in nstdb.glob("118e*.hea")):
        snr = -float(name[5:]) if name[4] == "_" else float(name[4:])
        _, _, out, gains = stress_record(mitdb / "118", nstdb / "em", snr)
        ref = wfdb.rdrecord(str(nstdb / name), physical=False).d_signal.astype(np.int64)
        diff = np.abs(out - ref)
        worst = max(worst, int(diff.max()))
        print(f"{name}: gains {', '.join(f'{g:.6g}' for g in gains)}; samples differing: "
              f"{int((diff > 0).sum())} of {diff.size}, largest difference {int(diff.max())} adu")
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mitdb", type=Path, default=SHARED / "mitdb")
    ap.add_argument("--nstdb", type=Path, default=SHARED / "nstdb", help="for `em` and the records to check against")
    ap.add_argument("--check", action="store_true", help="reproduce the database's 118eNN records and compare")
    ap.add_argument("--out", type=Path, help="write every mitdb record at each SNR here (NNNeSS)")
    ap.add_argument("--snr", type=float, nargs="*", default=list(SNRS))
    args = ap.parse_args()
    if args.check:
        worst = check(args.mitdb, args.nstdb)
        print("reproduced sample-exact" if worst == 0 else f"NOT reproduced: largest difference {worst} adu")
        sys.exit(0 if worst == 0 else 1)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for rec in sorted(p.stem for p in args.mitdb.glob("*.atr")):
            for snr in args.snr:
                name = f"{rec}e{int(snr):02d}" if snr >= 0 else f"{rec}e_{int(-snr)}"
                r, ann, out, _ = stress_record(args.mitdb / rec, args.nstdb / "em", snr)
                write(r, ann, out, name, args.out, snr)
                print(name, file=sys.stderr)


if __name__ == "__main__":
    main()
