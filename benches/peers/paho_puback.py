#!/usr/bin/env python3
"""A paho-mqtt client's QoS 1 publish -> PUBACK latency on its own, against a broker on loopback:
the peer figure beside `cargo bench --bench mqtt_delivery` (same payload size, same counts).

    python3 -m pip install -r benches/peers/requirements.txt
    python3 benches/peers/paho_puback.py --port 1883

paho's network loop runs in its own thread (loop_start), as an application would use it; each
publish waits for its on_publish callback (PUBACK received) before the next, with TCP_NODELAY.
"""
import argparse
import socket
import statistics
import threading
import time

import paho.mqtt.client as mqtt

WARMUP, N = 200, 2000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    payload = (b'{"schema":"biofeedd.feedback.v1","seq":1,' + b"x" * 1600)[:1600]
    for run in range(args.runs):
        acked = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"paho-bench-{run}", protocol=mqtt.MQTTv5)
        client.on_publish = lambda c, u, mid, rc, props: acked.set()
        connected = threading.Event()
        client.on_connect = lambda c, u, f, rc, props: connected.set()
        client.connect("127.0.0.1", args.port)
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.loop_start()
        connected.wait(5)
        lat = []
        for i in range(WARMUP + N):
            acked.clear()
            t = time.perf_counter()
            client.publish("bench/paho", payload, qos=1)
            acked.wait(5)
            if i >= WARMUP:
                lat.append((time.perf_counter() - t) * 1000)
        client.loop_stop()
        client.disconnect()
        lat.sort()
        q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
        print(f"paho run {run}: n={len(lat)} p50 {statistics.median(lat):.3f} ms  p90 {q(0.9):.3f}  p99 {q(0.99):.3f}  p99.9 {q(0.999):.3f}  max {lat[-1]:.3f}")


if __name__ == "__main__":
    main()
