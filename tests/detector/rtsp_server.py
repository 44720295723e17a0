"""A real RTSP server for the tests: GStreamer's gst-rtsp-server, on 127.0.0.1 only.

Runs under Debian's /usr/bin/python3 (python3-gi, gir1.2-gst-rtsp-server-1.0), not the project
venv. Serves `/cam` as H.264 or H.265, from a moving test pattern or from a folder of JPEG
images (played in a loop), optionally behind basic auth and TCP only. Prints `READY` once it
listens; SIGTERM ends it.

    /usr/bin/python3 tests/detector/rtsp_server.py --port 8554 --codec h264 --user u --password p
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

ENCODERS = {
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} ! rtph264pay",
    "h265": "x265enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} ! rtph265pay",
}


def pipeline(args: argparse.Namespace) -> str:
    raw = f"video/x-raw,format=I420,width={args.width},height={args.height},framerate={args.fps}/1"
    if args.images:
        source = (
            f"multifilesrc location={args.images}/%05d.jpg loop=true "
            f'caps="image/jpeg,framerate={args.fps}/1" ! jpegdec ! videoconvert ! videoscale'
        )
    else:
        source = "videotestsrc is-live=true pattern=ball ! timeoverlay ! videoconvert"
    encode = ENCODERS[args.codec].format(gop=args.fps)
    return f"( {source} ! {raw} ! {encode} name=pay0 pt=96 )"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--codec", choices=sorted(ENCODERS), default="h264")
    parser.add_argument("--images", help="folder of 00000.jpg, 00001.jpg, ... to play in a loop")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--tcp-only", action="store_true", help="refuse RTP over UDP")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(pipeline(args))
    if args.tcp_only:
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", args.user)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
        server.set_auth(auth)
        role = f"{args.user}, media.factory.access=(boolean)true, "
        role += "media.factory.construct=(boolean)true"
        factory.add_role_from_structure(Gst.Structure.from_string(role)[0])
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 1
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print("READY", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
