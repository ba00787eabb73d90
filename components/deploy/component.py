"""KFP component: serve the registered version with KServe and wait until it is Ready."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from components.images import MEDLLAMA_IMAGE  # the default profile's; the pipeline sets the compiled profile's


@dsl.component(base_image=MEDLLAMA_IMAGE, install_kfp_package=False)
def deploy_model(
    model_name: str,
    version: str,
    cluster: str,
    tracking_uri: str,
    model: Input[Model],
    work_pvc: str,
    gpus: int,
    namespace: str,
    manifest: Output[Artifact],
) -> str:
    """Creates or updates the version's LLMInferenceService (gpus > 0, vLLM) or InferenceService on the
    medllama-serve runtime (CPU; k8s/ and the chart install the runtime) and returns its URL once Ready.
    Without a Kubernetes API (kfp.local) it only records what it would apply in `manifest` and returns ""."""
    from medllama.k8s.deploy import deploy_registered

    outcome = deploy_registered(model_name, version, manifest.path, cluster=cluster, gpus=gpus,
                                namespace=namespace, tracking_uri=tracking_uri or None,
                                exported_uri=model.metadata["uri"], work_pvc=work_pvc)
    manifest.metadata.update(outcome)
    return outcome["url"] or ""
