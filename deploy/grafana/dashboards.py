#!/usr/bin/env python3
"""Writes the Grafana dashboards (deploy/grafana/*.json) and their description
(docs/dashboards.md) from the panel lists below: one place for each panel's title, meaning,
query and unit, so the JSON, the docs and the test that runs every query agree.

Run it after changing a panel: python3 deploy/grafana/dashboards.py
The e2e test `dashboards::every_panel_returns_data` runs every panel's query against the
local Prometheus after an ingestion.
"""

import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
RATE = "$__rate_interval"
SRC = 'source=~"$source"'


def p95(metric, by="", q="0.95"):
    group = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[{RATE}])))"


# (title, description, [(expr, legend)], unit, kind)
OVERVIEW = [
    ("Ingestions started", "Ingestion workflows started per second, by source.",
     [(f'sum by (source) (rate(apex_workflow_started_total{{workflow="DocumentIngestionWorkflow", {SRC}}}[{RATE}]))', "{{source}}")], "reqps", "timeseries"),
    ("Ingestions ended by status", "Ingestion workflows that ended per second: completed, unchanged (same content again) or failed.",
     [(f'sum by (status) (rate(apex_workflow_ended_total{{workflow="DocumentIngestionWorkflow", {SRC}}}[{RATE}]))', "{{status}}")], "reqps", "timeseries"),
    ("Workflow failure ratio", "Share of ingestions that ended failed (0 when none ended). The alert ApexWorkflowFailureRatio fires above 5 %.",
     [(f'(sum(rate(apex_workflow_ended_total{{status="failed", {SRC}}}[{RATE}])) or vector(0)) / clamp_min(sum(rate(apex_workflow_ended_total{{{SRC}}}[{RATE}])), 1e-9)', "failed share")], "percentunit", "stat"),
    ("End-to-end ingestion time", "From a workflow's first task to its end (workflow time): p50 and p95.",
     [(p95("apex_workflow_seconds", q="0.5"), "p50"), (p95("apex_workflow_seconds"), "p95")], "s", "timeseries"),
    ("Upload to queryable (lag)", "From the gateway accepting an upload to its final status, p95 by path (temporal, legacy).",
     [(p95("apex_gateway_ingestion_lag_seconds", "path"), "{{path}}")], "s", "timeseries"),
    ("Documents made queryable, by source", "Document versions the writer stored in the last hour, by source.",
     [('sum by (source) (increase(apex_writer_stored_total{kind="documents", ' + SRC + '}[1h]))', "{{source}}")], "short", "timeseries"),
    ("Entities stored, by source", "Entities the writer stored in the last hour, by source.",
     [('sum by (source) (increase(apex_writer_stored_total{kind="entities", ' + SRC + '}[1h]))', "{{source}}")], "short", "timeseries"),
    ("Uploads accepted, by path", "Uploads the gateway accepted per second, by the path they took.",
     [(f"sum by (path) (rate(apex_gateway_ingestions_accepted_total[{RATE}]))", "{{path}}")], "reqps", "timeseries"),
    ("In flight at the gateways", "Ingestions accepted by a gateway and not ended.",
     [("sum(apex_gateway_in_flight)", "in flight")], "short", "stat"),
    ("Ingestions waiting for a dependency", "Steps the worker retries because a service or store is away, and the longest wait.",
     [("sum(apex_ingest_waiting)", "waiting"), ("max(apex_ingest_waiting_seconds)", "longest wait (s)")], "short", "timeseries"),
    ("Activity attempts by outcome", "Activity attempts per second: ok, retryable failure, final failure.",
     [(f"sum by (outcome) (rate(apex_activity_attempts_total[{RATE}]))", "{{outcome}}")], "reqps", "timeseries"),
    ("Activity time p95", "Time of one activity attempt, p95 by activity.",
     [(p95("apex_activity_attempt_seconds", "activity"), "{{activity}}")], "s", "timeseries"),
    ("Final activity failures (1 h)", "Activity attempts that failed for good in the last hour, by activity.",
     [('sum by (activity) (increase(apex_activity_attempts_total{outcome="final"}[1h])) or vector(0)', "{{activity}}")], "short", "timeseries"),
]

QUALITY = [
    ("Chunks per document", "Chunks the parser made per document: p50 and p95.",
     [(p95("apex_parser_chunks", q="0.5"), "p50"), (p95("apex_parser_chunks"), "p95")], "short", "timeseries"),
    ("Entities per document", "Entities the extractor found per document: p50 and p95.",
     [(p95("apex_extractor_document_entities", q="0.5"), "p50"), (p95("apex_extractor_document_entities"), "p95")], "short", "timeseries"),
    ("Vectors per document", "Vectors the embedder made per document: p50 and p95.",
     [(p95("apex_embedder_document_vectors", q="0.5"), "p50"), (p95("apex_embedder_document_vectors"), "p95")], "short", "timeseries"),
    ("Documents without chunks (1 h)", "Documents parsed without error that gave no chunks (a scan without text layer, an empty file). Silent failures: alert ApexDocumentsWithoutChunks.",
     [("sum(increase(apex_parser_empty_documents_total[1h])) or vector(0)", "no chunks")], "short", "stat"),
    ("Documents without entities (1 h)", "Documents with text in which no entity was found.",
     [("sum(increase(apex_extractor_documents_without_entities_total[1h]))", "no entities")], "short", "stat"),
    ("Texts truncated (1 h)", "Chunks cut at the model's token limit before embedding.",
     [("sum(increase(apex_embedder_truncated_total[1h]))", "truncated")], "short", "stat"),
    ("Parse warnings by kind (1 h)", "Warnings the parser attached to documents, by kind.",
     [("sum by (kind) (increase(apex_parser_warnings_total[1h])) or vector(0)", "{{kind}}")], "short", "timeseries"),
    ("Parse outcomes by format", "Documents parsed per second by format and outcome (ok or the error code).",
     [(f"sum by (format, outcome) (rate(apex_parser_documents_total[{RATE}]))", "{{format}} {{outcome}}")], "reqps", "timeseries"),
]

SERVICES = [
    ("Calls served, by service and method", "gRPC calls each service answered per second.",
     [(f'sum by (service, method) (rate(apex_rpc_server_requests_total{{service=~"$service"}}[{RATE}]))', "{{service}} {{method}}")], "reqps", "timeseries"),
    ("Call errors, by service and code", "gRPC calls answered with a non-OK status, per second, by service and code.",
     [(f'sum by (service, code) (rate(apex_rpc_server_requests_total{{service=~"$service", code!="0"}}[{RATE}])) or vector(0)', "{{service}} {{code}}")], "reqps", "timeseries"),
    ("Server time p95", "Time to answer a gRPC call, p95 by service and method.",
     [(p95('apex_rpc_server_seconds', "service, method").replace("_bucket[", '_bucket{service=~"$service"}['), "{{service}} {{method}}")], "s", "timeseries"),
    ("Caller-side time p95", "A call's time as the caller (worker, gateway) saw it, p95 by caller and method.",
     [(p95("apex_rpc_client_seconds", "service, method"), "{{service}} → {{method}}")], "s", "timeseries"),
    ("Embedder queue depth", "Texts waiting for an embedding batch.",
     [("sum(apex_embedder_queue_depth)", "queued texts")], "short", "timeseries"),
    ("Embedder batch size", "Texts per inference batch: p50 and p95.",
     [(p95("apex_embedder_batch_texts", q="0.5"), "p50"), (p95("apex_embedder_batch_texts"), "p95")], "short", "timeseries"),
    ("Embedder inference time p95", "Time of one batch's inference.",
     [(p95("apex_embedder_inference_seconds"), "p95")], "s", "timeseries"),
    ("Embedder refusals (queue full)", "Requests refused with RESOURCE_EXHAUSTED because the queue was full, per second.",
     [(f"sum(rate(apex_embedder_queue_full_total[{RATE}]))", "refused")], "reqps", "timeseries"),
    ("Embedder cache hit ratio", "Share of texts served from the embedding cache.",
     [(f"sum(rate(apex_embedder_cache_hits_total[{RATE}])) / clamp_min(sum(rate(apex_embedder_texts_total[{RATE}])), 1e-9)", "hit ratio")], "percentunit", "stat"),
    ("Gateway requests, by route and status", "HTTP requests per second at the gateways.",
     [(f"sum by (route, status) (rate(apex_gateway_requests_total[{RATE}]))", "{{route}} {{status}}")], "reqps", "timeseries"),
    ("Gateway time p95, by route", "HTTP request time at the gateways, p95 by route.",
     [(p95("apex_gateway_request_seconds", "route"), "{{route}}")], "s", "timeseries"),
    ("Warning and error log lines", "Log lines at warn and error per second, by service.",
     [(f'sum by (service, level) (rate(apex_log_lines_total{{service=~"$service"}}[{RATE}])) or vector(0)', "{{service}} {{level}}")], "short", "timeseries"),
    ("Targets up", "Every scraped process: 1 up, 0 down.",
     [("up", "{{job}} {{instance}}")], "short", "timeseries"),
]

STORES = [
    ("Store call time p95, by store", "Time of one store call from the writer, p95 by store.",
     [(p95("apex_writer_step_seconds", "store"), "{{store}}")], "s", "timeseries"),
    ("Store calls, by store and operation", "Store calls per second from the writer.",
     [(f"sum by (store, op) (rate(apex_writer_step_seconds_count[{RATE}]))", "{{store}} {{op}}")], "reqps", "timeseries"),
    ("Store errors, by store and code", "Store calls that failed per second (0 when none did). Alert ApexStoreErrors.",
     [(f"sum by (store, code) (rate(apex_writer_store_errors_total[{RATE}])) or vector(0)", "{{store}} {{code}}")], "reqps", "timeseries"),
    ("Circuit breakers", "Per store: 0 closed, 1 half-open, 2 open (writes refused at once). Alert ApexBreakerOpen.",
     [("max by (store) (apex_writer_breaker_state)", "{{store}}")], "short", "timeseries"),
    ("Writes by outcome", "WriteDocument per second: written, replayed (a retried call answered from its record), refused, failed.",
     [(f"sum by (outcome) (rate(apex_writer_writes_total[{RATE}]))", "{{outcome}}")], "reqps", "timeseries"),
    ("Saga compensations (1 h)", "Writes undone on one store because another failed, by store and result. Alert ApexSagaCompensations.",
     [("sum by (store, result) (increase(apex_writer_compensations_total[1h])) or vector(0)", "{{store}} {{result}}")], "short", "timeseries"),
    ("Chunks and vectors stored (1 h)", "Chunks and vectors the writer stored in the last hour.",
     [('sum by (kind) (increase(apex_writer_stored_total{kind=~"chunks|vectors"}[1h]))', "{{kind}}")], "short", "timeseries"),
]

TEMPORAL = [
    ("Workflow task schedule-to-start p95 (worker)", "From a workflow task's scheduling to a worker picking it up, as the SDK saw it. Alert ApexScheduleToStartSlow.",
     [(p95("temporal_workflow_task_schedule_to_start_latency"), "p95")], "s", "timeseries"),
    ("Activity schedule-to-start p95 (worker)", "From an activity's scheduling to a worker starting it, by activity type.",
     [(p95("temporal_activity_schedule_to_start_latency", "activity_type"), "{{activity_type}}")], "s", "timeseries"),
    ("Task slots", "Workflow and activity task slots used and available on the workers.",
     [("sum by (worker_type) (temporal_worker_task_slots_used)", "used {{worker_type}}"), ("sum by (worker_type) (temporal_worker_task_slots_available)", "available {{worker_type}}")], "short", "timeseries"),
    ("Pollers", "Pollers the workers run, by type. Alert ApexNoWorkerPolling when none.",
     [("sum by (poller_type) (temporal_num_pollers)", "{{poller_type}}")], "short", "timeseries"),
    ("Sticky cache", "Workflows kept in the workers' sticky cache, and cache hits per second.",
     [("sum(temporal_sticky_cache_size)", "cached workflows"), (f"sum(rate(temporal_sticky_cache_hit_total[{RATE}]))", "hits/s")], "short", "timeseries"),
    ("Workflow task execution p95", "Time the worker spent on one workflow task.",
     [(p95("temporal_workflow_task_execution_latency"), "p95")], "s", "timeseries"),
    ("Empty polls", "Workflow and activity polls that came back without a task, per second (an idle worker; 0 until a poll first times out).",
     [(f"sum(rate(temporal_workflow_task_queue_poll_empty_total[{RATE}])) or vector(0)", "workflow"), (f"sum(rate(temporal_activity_poll_no_task_total[{RATE}])) or vector(0)", "activity")], "reqps", "timeseries"),
    ("Task-queue backlog (server)", "Tasks waiting in the task queues, by queue and type, from the server. Alert ApexTaskQueueBacklogGrowing.",
     [('sum by (taskqueue, task_type) (approximate_backlog_count{taskqueue!~"temporal_sys.*"})', "{{taskqueue}} {{task_type}}")], "short", "timeseries"),
    ("Backlog age (server)", "Age of the oldest task waiting, by queue and type.",
     [('max by (taskqueue, task_type) (approximate_backlog_age_seconds{taskqueue!~"temporal_sys.*"})', "{{taskqueue}} {{task_type}}")], "s", "timeseries"),
    ("Schedule-to-start in the server's queue p95", "Time a task spent in the server's queue before a worker took it.",
     [(p95("task_latency_queue", "task_type"), "{{task_type}}")], "s", "timeseries"),
    ("Server requests, by operation", "Frontend requests per second, by operation.",
     [(f"sum by (operation) (rate(service_requests[{RATE}]))", "{{operation}}")], "reqps", "timeseries"),
    ("Server persistence time p95", "Time of the server's database operations, p95.",
     [(p95("persistence_latency"), "p95")], "s", "timeseries"),
]

DASHBOARDS = [
    ("apex-overview", "Apex Ingest: pipeline overview",
     "Ingestions from upload to queryable: rates, outcomes, latency, waiting, activities, and the data-quality layer (what each document gave).",
     [("Pipeline", OVERVIEW), ("Data quality", QUALITY)], ["source"]),
    ("apex-services", "Apex Ingest: services",
     "Each gRPC service and the gateway: rate, errors and latency as server and as caller, the embedder's queue and batches, log lines.",
     [("Services", SERVICES)], ["service"]),
    ("apex-stores", "Apex Ingest: stores",
     "The writer's four stores: call time, calls, errors, breakers, writes, compensations.",
     [("Stores", STORES)], []),
    ("apex-temporal", "Apex Ingest: Temporal SDK and server",
     "Workers (schedule-to-start, slots, pollers, sticky cache) and the server (task-queue backlog, queue time, requests, persistence).",
     [("Temporal", TEMPORAL)], []),
]

VARIABLES = {
    "source": ("label_values(apex_workflow_started_total, source)", "Source"),
    "service": ("label_values(apex_rpc_server_requests_total, service)", "Service"),
}


def panel(pid, title, description, targets, unit, kind, x, y):
    return {
        "id": pid,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "expr": expr,
                "legendFormat": legend,
            }
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def dashboard(uid, title, description, rows, variables):
    panels, pid, y = [], 1, 0
    for row_title, items in rows:
        panels.append({"id": pid, "type": "row", "title": row_title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid, y = pid + 1, y + 1
        for i, (t, d, targets, unit, kind) in enumerate(items):
            panels.append(panel(pid, t, d, targets, unit, kind, 12 * (i % 2), y + 8 * (i // 2)))
            pid += 1
        y += 8 * ((len(items) + 1) // 2)
    templating = [{"name": "datasource", "type": "datasource", "query": "prometheus",
                   "label": "Prometheus", "current": {}, "hide": 0}]
    for v in variables:
        query, label = VARIABLES[v]
        templating.append({
            "name": v, "label": label, "type": "query",
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "query": {"query": query, "refId": "Var"}, "definition": query,
            "includeAll": True, "allValue": ".*", "multi": True, "refresh": 2,
            "current": {"text": "All", "value": "$__all"},
        })
    return {
        "uid": uid, "title": title, "description": description,
        "tags": ["apex-ingest"], "timezone": "utc", "schemaVersion": 39, "version": 1,
        "refresh": "30s", "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": templating}, "panels": panels, "annotations": {"list": []},
    }


def main():
    out = ROOT / "deploy" / "grafana"
    doc = ["# Dashboards", "",
           "Four Grafana dashboards, as JSON under `deploy/grafana/` (made by `deploy/grafana/dashboards.py`;",
           "import them, or provision the folder). Every panel's query runs against the local Prometheus in",
           "the test `dashboards::every_panel_returns_data` after an ingestion. Each dashboard has a",
           "`datasource` variable (a Prometheus); the overview filters by `source`, the services one by `service`.",
           "", "", ""]
    total = 0
    for uid, title, description, rows, variables in DASHBOARDS:
        d = dashboard(uid, title, description, rows, variables)
        (out / f"{uid}.json").write_text(json.dumps(d, indent=2, ensure_ascii=False) + "\n")
        n = sum(1 for p in d["panels"] if p["type"] != "row")
        total += n
        doc += [f"## {title} (`{uid}.json`, {n} panels)", "", description, ""]
        for row_title, items in rows:
            doc += [f"**{row_title}**", "", "| panel | what it shows | unit |", "| --- | --- | --- |"]
            for t, dsc, _, unit, _ in items:
                doc.append(f"| {t} | {dsc} | {unit} |")
            doc.append("")
    doc[7] = f"{total} panels in all."
    (ROOT / "docs" / "dashboards.md").write_text("\n".join(doc))
    print(f"{len(DASHBOARDS)} dashboards, {total} panels")


if __name__ == "__main__":
    main()
