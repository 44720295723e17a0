"""Simulated RTSP cameras: GStreamer's gst-rtsp-server on 127.0.0.1 only (tests and benchmarks).

Runs under Debian's /usr/bin/python3 (python3-gi, gir1.2-gst-rtsp-server-1.0), not the project
venv: nothing in the detector imports it. Three uses:

- one test camera `/cam`, H.264 or H.265, from a moving test pattern or a folder of JPEG images
  played in a loop, optionally behind basic auth and TCP only (tests/detector/test_rtsp.py);
- `--clips DIR`: every `DIR/NAME.mp4` (H.264) served as `/NAME` without re-encoding, as cameras
  that encode on board would send it; each client gets its own stream from the clip's start
  (`siteguard bench cameras`);
- `--encode FRAMES --out FILE.mp4`: encode a folder of 00000.jpg, 00001.jpg, ... (looped) into
  such a clip, `--seconds` long at `--fps`, and exit.

Prints `READY` once it listens; SIGTERM ends it.

    /usr/bin/python3 detector/rtsp_sim.py --port 8554 --codec h264 --user u --password p
    /usr/bin/python3 detector/rtsp_sim.py --port 8554 --clips build/bench-cameras/clips
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

ENCODERS = {
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} ! rtph264pay",
    "h265": "x265enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} ! rtph265pay",
}


def _raw_caps(args: argparse.Namespace) -> str:
    return f"video/x-raw,format=I420,width={args.width},height={args.height},framerate={args.fps}/1"


def _images(folder: str, fps: int) -> str:
    return (
        f"multifilesrc location={folder}/%05d.jpg loop=true "
        f'caps="image/jpeg,framerate={fps}/1" ! jpegdec ! videoconvert ! videoscale'
    )


def pipeline(args: argparse.Namespace) -> str:
    """The test camera `/cam`: encoded live from a test pattern or an image folder."""
    if args.images:
        source = _images(args.images, args.fps)
    else:
        # the clock drawn on it is a nicety: timeoverlay needs the pango plugin, not everywhere
        overlay = "timeoverlay ! " if Gst.ElementFactory.find("timeoverlay") else ""
        source = f"videotestsrc is-live=true pattern=ball ! {overlay}videoconvert"
    encode = ENCODERS[args.codec].format(gop=args.fps)
    return f"( {source} ! {_raw_caps(args)} ! {encode} name=pay0 pt=96 )"


def clip_pipeline(clip: Path) -> str:
    """A pre-encoded H.264 MP4, demuxed and sent as it is (no decoding, no encoding)."""
    return f"( filesrc location={clip} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 )"


def encode(args: argparse.Namespace) -> int:
    """`--encode FRAMES --out FILE`: `--seconds` of the looped frames as H.264 in MP4."""
    frames = int(args.seconds * args.fps)
    launch = (
        f"{_images(args.encode, args.fps)} ! {_raw_caps(args)} ! identity eos-after={frames} ! "
        f"x264enc speed-preset=ultrafast tune=zerolatency key-int-max={args.fps} ! h264parse ! "
        f"mp4mux ! filesink location={args.out}"
    )
    pipe = Gst.parse_launch(launch)
    pipe.set_state(Gst.State.PLAYING)
    message = pipe.get_bus().timed_pop_filtered(
        Gst.CLOCK_TIME_NONE, Gst.MessageType.EOS | Gst.MessageType.ERROR
    )
    pipe.set_state(Gst.State.NULL)
    if message.type == Gst.MessageType.ERROR:
        error, debug = message.parse_error()
        print(f"encoding {args.encode} failed: {error.message} ({debug})", file=sys.stderr)
        return 1
    return 0


def _factory(launch: str, args: argparse.Namespace) -> GstRtspServer.RTSPMediaFactory:
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    if args.tcp_only:
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    if args.user:
        role = f"{args.user}, media.factory.access=(boolean)true, "
        role += "media.factory.construct=(boolean)true"
        factory.add_role_from_structure(Gst.Structure.from_string(role)[0])
    return factory


def serve(args: argparse.Namespace) -> int:
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    if args.clips:
        clips = sorted(Path(args.clips).glob("*.mp4"))
        if not clips:
            print(f"no *.mp4 clips in {args.clips}", file=sys.stderr, flush=True)
            return 1
        for clip in clips:
            mounts.add_factory(f"/{clip.stem}", _factory(clip_pipeline(clip.resolve()), args))
    else:
        mounts.add_factory("/cam", _factory(pipeline(args), args))
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", args.user)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
        server.set_auth(auth)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 1
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print("READY", flush=True)
    loop.run()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, help="serve on 127.0.0.1:PORT")
    parser.add_argument("--codec", choices=sorted(ENCODERS), default="h264")
    parser.add_argument("--images", help="folder of 00000.jpg, 00001.jpg, ... to play in a loop")
    parser.add_argument("--clips", help="serve each DIR/NAME.mp4 (H.264) as /NAME")
    parser.add_argument("--encode", metavar="FRAMES", help="encode this image folder and exit")
    parser.add_argument("--out", help="--encode: the MP4 to write")
    parser.add_argument("--seconds", type=float, default=60.0, help="--encode: clip length")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--tcp-only", action="store_true", help="refuse RTP over UDP")
    args = parser.parse_args()

    Gst.init(None)
    if args.encode:
        if not args.out:
            parser.error("--encode needs --out")
        return encode(args)
    if args.port is None:
        parser.error("--port is required to serve")
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
