package main

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

type archiveFile struct{}

func newArchiveFile() datasource.DataSource { return &archiveFile{} }

type sourceModel struct {
	Content  types.String `tfsdk:"content"`
	Filename types.String `tfsdk:"filename"`
}

type archiveFileModel struct {
	ID                        types.String  `tfsdk:"id"`
	Type                      types.String  `tfsdk:"type"`
	Source                    []sourceModel `tfsdk:"source"`
	SourceContent             types.String  `tfsdk:"source_content"`
	SourceContentFilename     types.String  `tfsdk:"source_content_filename"`
	SourceFile                types.String  `tfsdk:"source_file"`
	SourceDir                 types.String  `tfsdk:"source_dir"`
	Excludes                  types.Set     `tfsdk:"excludes"`
	ExcludeSymlinkDirectories types.Bool    `tfsdk:"exclude_symlink_directories"`
	OutputPath                types.String  `tfsdk:"output_path"`
	OutputFileMode            types.String  `tfsdk:"output_file_mode"`
	OutputSize                types.Int64   `tfsdk:"output_size"`
	OutputSha                 types.String  `tfsdk:"output_sha"`
	OutputSha256              types.String  `tfsdk:"output_sha256"`
	OutputBase64Sha256        types.String  `tfsdk:"output_base64sha256"`
	OutputSha512              types.String  `tfsdk:"output_sha512"`
	OutputBase64Sha512        types.String  `tfsdk:"output_base64sha512"`
	OutputMd5                 types.String  `tfsdk:"output_md5"`
}

func (d *archiveFile) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_file"
}

func (d *archiveFile) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	computed := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{Computed: true, Description: desc}
	}
	optional := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{Optional: true, Description: desc}
	}
	resp.Schema = schema.Schema{
		Description: "Generates a deterministic zip archive from content, a file, or a directory.",
		Blocks: map[string]schema.Block{
			"source": schema.SetNestedBlock{
				Description: "Content to add to the archive under a file name.",
				NestedObject: schema.NestedBlockObject{Attributes: map[string]schema.Attribute{
					"content":  schema.StringAttribute{Required: true},
					"filename": schema.StringAttribute{Required: true},
				}},
			},
		},
		Attributes: map[string]schema.Attribute{
			"id":                      computed("SHA1 checksum of the archive."),
			"type":                    schema.StringAttribute{Required: true, Description: "Archive type; only zip is supported."},
			"source_content":          optional("Content of the single file to archive."),
			"source_content_filename": optional("File name for source_content inside the archive."),
			"source_file":             optional("Path of a single file to archive."),
			"source_dir":              optional("Directory whose files are archived."),
			"excludes": schema.SetAttribute{
				Optional: true, ElementType: types.StringType,
				Description: "Paths or doublestar globs, relative to source_dir, to leave out.",
			},
			"exclude_symlink_directories": schema.BoolAttribute{Optional: true, Description: "Skip symlinked directories."},
			"output_path":                 schema.StringAttribute{Required: true, Description: "Where the archive is written."},
			"output_file_mode":            optional("File mode (octal string, e.g. 0644) given to every entry."),
			"output_size":                 schema.Int64Attribute{Computed: true, Description: "Archive size in bytes."},
			"output_sha":                  computed("SHA1 of the archive, hex."),
			"output_sha256":               computed("SHA256 of the archive, hex."),
			"output_base64sha256":         computed("SHA256 of the archive, base64."),
			"output_sha512":               computed("SHA512 of the archive, hex."),
			"output_base64sha512":         computed("SHA512 of the archive, base64."),
			"output_md5":                  computed("MD5 of the archive, hex."),
		},
	}
}

func (d *archiveFile) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m archiveFileModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	spec, err := specFromModel(ctx, m)
	if err == nil {
		var sums checksums
		sums, err = writeZip(spec)
		if err == nil {
			m.ID = types.StringValue(sums.sha1)
			m.OutputSize = types.Int64Value(sums.size)
			m.OutputSha = types.StringValue(sums.sha1)
			m.OutputSha256 = types.StringValue(sums.sha256)
			m.OutputBase64Sha256 = types.StringValue(sums.b64sha256)
			m.OutputSha512 = types.StringValue(sums.sha512)
			m.OutputBase64Sha512 = types.StringValue(sums.b64sha512)
			m.OutputMd5 = types.StringValue(sums.md5)
		}
	}
	if err != nil {
		resp.Diagnostics.AddError("archive_file failed", err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func specFromModel(ctx context.Context, m archiveFileModel) (zipSpec, error) {
	spec := zipSpec{
		outputPath:     m.OutputPath.ValueString(),
		sourceDir:      m.SourceDir.ValueString(),
		sourceFile:     m.SourceFile.ValueString(),
		excludeSymDirs: m.ExcludeSymlinkDirectories.ValueBool(),
		fileMode:       m.OutputFileMode.ValueString(),
	}
	if t := m.Type.ValueString(); t != "zip" {
		return spec, fmt.Errorf("type %q is not supported: only \"zip\"", t)
	}
	if !m.SourceContent.IsNull() {
		spec.contents = append(spec.contents, namedContent{m.SourceContentFilename.ValueString(), m.SourceContent.ValueString()})
	}
	for _, s := range m.Source {
		spec.contents = append(spec.contents, namedContent{s.Filename.ValueString(), s.Content.ValueString()})
	}
	if !m.Excludes.IsNull() {
		if diags := m.Excludes.ElementsAs(ctx, &spec.excludes, false); diags.HasError() {
			return spec, fmt.Errorf("excludes: %v", diags)
		}
	}
	return spec, spec.validate()
}
