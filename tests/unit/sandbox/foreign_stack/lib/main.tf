# A stack of nobody's conventions: one file, a provider block and an S3 backend configured at init,
# no layer, no tfvars, no env or deletion_protection variables.
terraform {
  required_providers {
    aws     = { source = "hashicorp/aws" }
    archive = { source = "hashicorp/archive" }
  }
  backend "s3" {}
}

provider "aws" {
  region = var.region
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "greeting" {
  type    = string
  default = "hello"
}

data "archive_file" "app" {
  type        = "zip"
  source_dir  = "${path.module}/app"
  output_path = "${path.module}/app.zip"
}

resource "aws_dynamodb_table" "said" {
  name         = "greeter-said"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "name"
  attribute {
    name = "name"
    type = "S"
  }
}

resource "aws_iam_role" "greeter" {
  name = "greeter"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "lambda.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
}

resource "aws_iam_role_policy" "greeter" {
  role = aws_iam_role.greeter.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = "dynamodb:PutItem", Resource = aws_dynamodb_table.said.arn }]
  })
}

resource "aws_lambda_function" "greeter" {
  function_name    = "greeter"
  role             = aws_iam_role.greeter.arn
  runtime          = "python3.12"
  handler          = "greet.handle"
  filename         = data.archive_file.app.output_path
  source_code_hash = data.archive_file.app.output_base64sha256
  environment {
    variables = { GREETING = var.greeting, TABLE = aws_dynamodb_table.said.name }
  }
}

output "function_name" {
  value = aws_lambda_function.greeter.function_name
}

output "table" {
  value = aws_dynamodb_table.said.name
}
