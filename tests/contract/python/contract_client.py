#!/usr/bin/python3
"""A non-Node client of medsyn's services, built from the .proto files alone.

Compiles proto/ (and the standard health proto) with protoc into a temporary folder, then, for
each "name=host:port" argument, calls grpc.health.v1.Health/Check for the service's contract
(whose full name it reads from the compiled descriptor) and two RPCs of medsyn.jobs.v1.JobService
(ListJobs, and GetJob for an unknown id). Prints one JSON object per service.
Needs Debian's python3-grpcio, python3-protobuf and protobuf-compiler.
"""
import importlib
import json
import subprocess
import sys
import tempfile

import grpc


def compile_protos(proto_root, health_root, out):
    services = [f"medsyn/{name}/v1/{name}.proto" for name in ("anonymizer", "synthesizer", "pretrainer", "evaluator")]
    shared = [f"medsyn/common/v1/{name}.proto" for name in ("artifact", "error", "job")] + ["medsyn/jobs/v1/jobs.proto"]
    files = services + shared
    subprocess.run(["protoc", f"-I{proto_root}", f"--python_out={out}", *files], check=True)
    subprocess.run(["protoc", f"-I{health_root}", f"--python_out={out}", "health/v1/health.proto"], check=True)
    sys.path.insert(0, out)


def check_service(name, target):
    contract = importlib.import_module(f"medsyn.{name}.v1.{name}_pb2")
    jobs = importlib.import_module("medsyn.jobs.v1.jobs_pb2")
    health = importlib.import_module("health.v1.health_pb2")
    service = contract.DESCRIPTOR.services_by_name[f"{name.capitalize()}Service"].full_name
    with grpc.insecure_channel(target) as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health.HealthCheckRequest.SerializeToString,
            response_deserializer=health.HealthCheckResponse.FromString,
        )
        status = health.HealthCheckResponse.ServingStatus.Name(check(health.HealthCheckRequest(service=service), timeout=5).status)
        list_jobs = channel.unary_unary(
            "/medsyn.jobs.v1.JobService/ListJobs",
            request_serializer=jobs.ListJobsRequest.SerializeToString,
            response_deserializer=jobs.ListJobsResponse.FromString,
        )
        listed = list_jobs(jobs.ListJobsRequest(page_size=5), timeout=5)
        get_job = channel.unary_unary(
            "/medsyn.jobs.v1.JobService/GetJob",
            request_serializer=jobs.GetJobRequest.SerializeToString,
            response_deserializer=jobs.GetJobResponse.FromString,
        )
        try:
            get_job(jobs.GetJobRequest(job_id="no-such-job"), timeout=5)
            missing = "OK"
        except grpc.RpcError as error:
            missing = f"{error.code().name}: {error.details()}"
    return {"service": service, "health": status, "jobs": len(listed.jobs), "get_missing_job": missing}


def main():
    proto_root, health_root, *targets = sys.argv[1:]
    with tempfile.TemporaryDirectory() as out:
        compile_protos(proto_root, health_root, out)
        for argument in targets:
            name, target = argument.split("=", 1)
            print(json.dumps(check_service(name, target)), flush=True)


if __name__ == "__main__":
    main()
