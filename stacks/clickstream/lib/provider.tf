# Provider and remote state. tap_stack.tf declares var.aws_region and never configures
# providers itself.
#
# State lives in S3 (with S3-native locking). A backend block cannot read variables, so every
# identifier comes from a per-environment file at init:
#   tofu init -backend-config=../backend/<env>.hcl
# (bucket, key, region, use_lockfile, encrypt). The harness's offline plans replace the backend
# with a local one; the sandbox creates the state bucket in its own S3 first.
terraform {
  backend "s3" {}
}

provider "aws" {
  region = var.aws_region
}
