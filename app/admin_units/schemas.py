from pydantic import BaseModel, Field


class AdminUnitOut(BaseModel):
    code: str = Field(examples=["TNG-PDP"])
    name: str = Field(examples=["Phường Phan Đình Phùng"])
    name_en: str = Field(examples=["Phan Dinh Phung Ward"])
    level: str = Field(examples=["ward"])
    parent_code: str | None = Field(default=None, examples=["TNG"])
