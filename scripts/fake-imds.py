#!/usr/bin/env python3
"""A stand-in for the EC2 instance metadata service (IMDSv2), for the demo and the tests off EC2.

Answers what SpecialSnowflake reads for ${aws:...} placeholders, the way IMDSv2 does: a token
from PUT /latest/api/token (with its TTL header), then GETs that carry the token; a GET without
it is refused with 401, as on an instance that requires IMDSv2.

    scripts/fake-imds.py [--instance-id ID] [--region REGION]

Prints the port it listens on (127.0.0.1, a free port) on the first line of stdout, then serves
until killed. Point the AWS SDK at it with AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:PORT.
"""

import argparse
import http.server
import secrets
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instance-id", default="i-0fa4e0ddc0ffee123")
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args()
    token = secrets.token_hex(16)
    facts = {
        "/latest/meta-data/instance-id": args.instance_id,
        "/latest/meta-data/instance-type": "t3.micro",
        "/latest/meta-data/placement/region": args.region,
        "/latest/meta-data/placement/availability-zone": args.region + "a",
        "/latest/meta-data/ami-id": "ami-0123456789abcdef0",
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def reply(self, status, body, headers=()):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self):
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            if self.path != "/latest/api/token" or not ttl:
                self.reply(400, "PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds")
                return
            self.reply(200, token, [("X-aws-ec2-metadata-token-ttl-seconds", ttl)])

        def do_GET(self):
            if self.headers.get("X-aws-ec2-metadata-token") != token:
                self.reply(401, "IMDSv2 token required")
            elif self.path in facts:
                self.reply(200, facts[self.path])
            else:
                self.reply(404, "not found")

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
