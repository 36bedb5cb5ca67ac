"""Entry point: configuration from the environment (docs/configuration.md, docs/pretrainer-torch.md).

  python3 -m medsyn_pretrainer_torch.main
"""
from . import kit, service


def start(env=None):
    # The runner is registered by service.register (it needs the context); the kit resumes jobs after register.
    return kit.start_service(service.SERVICE, service.DEFAULTS, service.register, {service.PRETRAIN_JOB: None}, env=env,
                             extra_config=service.EXTRA_CONFIG)


if __name__ == "__main__":
    kit.run_main(start)
