"""Many trials: space files, Ray Tune + Optuna, MLflow tracking, the cluster, the final stage."""
