#!/usr/bin/python3
"""A real RTSP server on loopback for tests and the soak script: GStreamer's RTSP server
serving H.264 from a real MP4 file (not re-encoded).

Runs under the *system* Python, which has GStreamer's introspection bindings from Debian
(python3-gi, gir1.2-gst-rtsp-server-1.0; .ci/run installs them):

    /usr/bin/python3 scripts/rtsp_server.py --port 8554 --file clip.mp4 [--user u --password p] [--sound aac]

Serves ``rtsp://127.0.0.1:<port>/stream``; every client gets its own playback from the start
of the file. ``--sound aac`` (or ``alaw``, ``mulaw``: G.711) sends the file's sound beside the
video, as a camera with a microphone does (MPEG-4 generic RTP, or PCMA/PCMU). Prints
``ready`` once listening. Commands on stdin, one per line: ``stall`` (stop sending frames on
every open session but keep the connections up), ``resume``, ``quit``.
"""

from __future__ import annotations

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", required=True)
    parser.add_argument("--mount", default="/stream")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--sound", choices=["aac", "alaw", "mulaw"])
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))

    factory = GstRtspServer.RTSPMediaFactory()
    location = args.file.replace('"', '\\"')
    sound = {None: "", "aac": "d.audio_0 ! queue ! aacparse ! rtpmp4gpay name=pay1 pt=97",
             "alaw": "d.audio_0 ! queue ! rtppcmapay name=pay1", "mulaw": "d.audio_0 ! queue ! rtppcmupay name=pay1"}
    factory.set_launch(
        f'( filesrc location="{location}" ! qtdemux name=d d.video_0 ! queue ! h264parse ! valve name=gate drop=false '
        f"! rtph264pay name=pay0 pt=96 config-interval=-1 {sound[args.sound]} )"
    )
    factory.set_shared(False)
    valves: list[Gst.Element] = []

    def configured(_factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
        valves.append(media.get_element().get_by_name("gate"))

    factory.connect("media-configure", configured)

    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_role_from_structure(Gst.Structure.new_empty("user"))
        permissions.add_permission_for_role("user", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
        permissions.add_permission_for_role("user", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
        factory.set_permissions(permissions)

    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 1

    loop = GLib.MainLoop()

    def command(channel: GLib.IOChannel, _condition: GLib.IOCondition) -> bool:
        line = channel.readline()
        if not line:
            loop.quit()
            return False
        word = line.strip()
        if word in ("stall", "resume"):
            for valve in valves:
                valve.set_property("drop", word == "stall")
        elif word == "quit":
            loop.quit()
            return False
        print(f"ok {word}", flush=True)
        return True

    GLib.io_add_watch(GLib.IOChannel.unix_new(sys.stdin.fileno()), GLib.IO_IN | GLib.IO_HUP, command)
    print("ready", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
