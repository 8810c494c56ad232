"""The file MLflow runs to build the pyfunc model ("models from code"): the logged model
holds this file, our code and the weights, and no pickled Python object at all."""

import mlflow.models

from pipelines.serve.pyfunc import MMRPhysPyfunc

mlflow.models.set_model(MMRPhysPyfunc())
