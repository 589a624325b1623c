// Warnings are compiler warnings; denying them here snapshots this one.
#![deny(deprecated)]
st2bot::bot!("admins-group-not-admins.yaml");
