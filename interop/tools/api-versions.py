#!/usr/bin/env python3
"""Summarise which API versions each client sent, from Apache Kafka's request log.

  api-versions.py DIR/request.log  > table.md

scripts/kafka-ref.sh writes DIR/request.log (kafka.request.logger at DEBUG: one JSON-ish
"Completed request:{...}" line per request). Clients are told apart by client id (the interop
clients set interop-<name>), and the software name/version they report in ApiVersions v3+.
"""
import collections
import json
import re
import sys


def client_name(cid):
    if cid.startswith("interop-"):
        return cid[len("interop-"):]
    if cid.startswith("console-producer"):
        return "kafka-console-producer"
    if cid.startswith("console-consumer"):
        return "kafka-console-consumer"
    if cid.startswith("perf-producer"):
        return "kafka-producer-perf-test"
    if re.match(r"^adminclient-\d+$", cid) or cid.startswith("adminclient"):
        return "Kafka CLI tools' admin client (kafka-topics, kafka-configs)"
    if cid.startswith("producer-"):
        return "java producer (%s)" % cid
    return cid or "<no client id>"


def main():
    path = sys.argv[1]
    seen = collections.defaultdict(lambda: collections.defaultdict(set))
    soft = {}
    with open(path, errors="replace") as f:
        for line in f:
            i = line.find("Completed request:")
            if i < 0:
                continue
            try:
                d = json.loads(line[i + len("Completed request:"):])
            except ValueError:
                continue
            h = d.get("requestHeader", {})
            ci = d.get("clientInformation", {})
            sw = "%s %s" % (ci.get("softwareName", "?"), ci.get("softwareVersion", "?"))
            cid = h.get("clientId") or ""
            if cid.startswith("broker-") or d.get("listener") == "CONTROLLER":
                continue
            name = client_name(cid)
            seen[name]["%s(%s)" % (h.get("requestApiKeyName"), h.get("requestApiKey"))].add(h.get("requestApiVersion"))
            if sw != "unknown unknown":
                soft.setdefault(name, set()).add(sw)
    for name in sorted(seen):
        print("### %s" % name)
        if name in soft:
            print("software: %s" % ", ".join(sorted(soft[name])))
        print()
        print("| API (key) | versions sent |")
        print("|---|---|")
        for api in sorted(seen[name], key=lambda a: int(re.search(r"\((\d+)\)", a).group(1))):
            print("| %s | %s |" % (api, ", ".join(str(v) for v in sorted(seen[name][api]))))
        print()


if __name__ == "__main__":
    main()
