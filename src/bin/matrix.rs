//! The matrix example bot (`bots/matrix.yaml`): StackStorm ChatOps on Matrix.
st2bot::bot!("bots/matrix.yaml");
