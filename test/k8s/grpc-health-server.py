# A real gRPC server (grpcio, Debian python3-grpcio) answering grpc.health.v1.Health/Check, for the
# proxy's gRPC probe tests. grpcio's own health module (grpcio-health-checking) is not packaged in
# Debian, so the messages are handled as raw bytes (generic handler, no serializers), encoded by
# hand: HealthCheckRequest {string service = 1}, HealthCheckResponse {ServingStatus status = 1}.
# Services: "" and "orders" SERVING, "sick" NOT_SERVING, "slow" answers after 5 s, "absent"
# NOT_FOUND (as grpcio's HealthServicer does). A second server implements nothing (UNIMPLEMENTED).
# Prints {"health": PORT, "bare": PORT} on one line, then serves until stdin closes.
# With --port-from-env (an app under `mutual up`, whose stdin is closed): the health server alone on
# 127.0.0.1:$PORT until killed; SIGUSR1 turns "" to NOT_SERVING.
import json
import os
import signal
import sys
import time
from concurrent import futures

import grpc

STATUS = {"": 1, "orders": 1, "sick": 2, "slow": 1}


def service_name(request):
    # 0x0a <length> <bytes>, or an empty message for "".
    if not request:
        return ""
    if request[0] != 0x0A or len(request) < 2 or request[1] >= 0x80:
        raise ValueError("unexpected request bytes %r" % request)
    return request[2 : 2 + request[1]].decode("utf-8")


def check(request, context):
    name = service_name(request)
    if name == "slow":
        time.sleep(5)
    if name not in STATUS:
        context.abort(grpc.StatusCode.NOT_FOUND, "unknown service %s" % name)
    return bytes([0x08, STATUS[name]])


handler = grpc.method_handlers_generic_handler(
    "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(check)}
)
if sys.argv[1:] == ["--port-from-env"]:
    signal.signal(signal.SIGUSR1, lambda *_: STATUS.update({"": 2}))
    app = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[handler])
    app.add_insecure_port("127.0.0.1:%d" % int(os.environ["PORT"]))
    app.start()
    print("serving grpc.health.v1.Health on 127.0.0.1:%s" % os.environ["PORT"], flush=True)
    app.wait_for_termination()
    sys.exit(0)
health = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[handler])
health_port = health.add_insecure_port("127.0.0.1:0")
bare = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
bare_port = bare.add_insecure_port("127.0.0.1:0")
health.start()
bare.start()
print(json.dumps({"health": health_port, "bare": bare_port}), flush=True)
sys.stdin.read()
health.stop(0)
bare.stop(0)
