# Provider configuration. The stack (tap_stack.tf) declares var.aws_region and
# never configures providers itself; tags are set on every resource from
# local.common_tags in tap_stack.tf.
provider "aws" {
  region = var.aws_region
}
